package hook

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// The committed machine code of the hook is what hook/asm/gen.sh makes of
// the assembly sources (skipped where GNU binutils are missing).
func TestNativeCodeGenerated(t *testing.T) {
	for _, tool := range []string{"as", "objcopy", "nm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (GNU binutils)", tool)
		}
	}
	want, err := exec.Command("sh", "asm/gen.sh").Output()
	if err != nil {
		t.Fatalf("asm/gen.sh: %v", err)
	}
	have, err := os.ReadFile("native_code.py")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, have) {
		t.Error("native_code.py is stale: run sh hook/asm/gen.sh > hook/native_code.py")
	}
}
