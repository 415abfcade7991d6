package inject

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// The committed machine code is what inject/asm/gen.sh makes of the
// assembly source, for each architecture (skipped where its GNU binutils
// are missing).
func TestTrampolineGenerated(t *testing.T) {
	for _, c := range []struct{ arch, native, prefix string }{
		{"amd64", "amd64", "x86_64-linux-gnu-"},
		{"arm64", "arm64", "aarch64-linux-gnu-"},
	} {
		t.Run(c.arch, func(t *testing.T) {
			prefix := c.prefix
			if runtime.GOARCH == c.native {
				prefix = ""
			}
			for _, tool := range []string{"as", "objcopy", "nm"} {
				if _, err := exec.LookPath(prefix + tool); err != nil {
					t.Skipf("no %s%s (GNU binutils)", prefix, tool)
				}
			}
			out, err := exec.Command("sh", "asm/gen.sh", c.arch).Output()
			if err != nil {
				t.Fatalf("asm/gen.sh %s: %v", c.arch, err)
			}
			want, err := format.Source(out)
			if err != nil {
				t.Fatal(err)
			}
			file := "trampoline_gen_" + c.arch + ".go"
			have, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(want, have) {
				t.Errorf("%s is stale: run sh inject/asm/gen.sh %s | gofmt > inject/%s", file, c.arch, file)
			}
		})
	}
}
