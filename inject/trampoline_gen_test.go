package inject

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"testing"
)

// The committed machine code is what inject/asm/gen.sh makes of the
// assembly source (skipped where GNU binutils are missing).
func TestTrampolineGenerated(t *testing.T) {
	for _, tool := range []string{"as", "objcopy", "nm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (GNU binutils)", tool)
		}
	}
	out, err := exec.Command("sh", "asm/gen.sh").Output()
	if err != nil {
		t.Fatalf("asm/gen.sh: %v", err)
	}
	want, err := format.Source(out)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("trampoline_gen_amd64.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, have) {
		t.Error("trampoline_gen_amd64.go is stale: run sh inject/asm/gen.sh | gofmt > inject/trampoline_gen_amd64.go")
	}
}
