package symbols

import (
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"github.com/lptrace/lptrace/proc"
)

// pyenvRoot is $PYENV_ROOT, else ~/.pyenv.
func pyenvRoot() string {
	if r := os.Getenv("PYENV_ROOT"); r != "" {
		return r
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".pyenv")
}

// loadRealFile loads an ELF file of the machine at base, with the mappings
// the dynamic linker would make.
func loadRealFile(t *testing.T, path string) *Module {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	m, err := newModule(f, path, loadMappings(ef, base, path))
	if err != nil {
		f.Close()
		t.Fatalf("newModule(%s): %v", path, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestRealLibc(t *testing.T) {
	var libc string
	for _, p := range []string{
		"/usr/lib/" + gnuTriplet() + "/libc.so.6",
		"/lib/" + gnuTriplet() + "/libc.so.6",
		"/usr/lib64/libc.so.6",
	} {
		if _, err := os.Stat(p); err == nil {
			libc = p
			break
		}
	}
	if libc == "" {
		t.Skip("no glibc libc.so.6")
	}
	m := loadRealFile(t, libc)
	if m.Bias != base {
		t.Errorf("Bias = %#x, want %#x", m.Bias, base)
	}
	if s, err := m.Lookup("munmap"); err != nil || s.Addr < base || s.IFunc || s.Data {
		t.Errorf("munmap: %+v, %v", s, err)
	}
	if m.PadEnd <= m.PadStart {
		t.Errorf("no padding after the code: [%#x, %#x)", m.PadStart, m.PadEnd)
	}
	if len(m.Writable) == 0 {
		t.Error("no writable ranges")
	}

	// The code segment alone (the lowest mapping does not start at file
	// offset 0) gives the same bias.
	var text []proc.Mapping
	for _, mp := range loadMappings(m.file, base, libc) {
		if mp.Exec() {
			text = append(text, mp)
		}
	}
	if len(text) == 1 && text[0].Offset != 0 {
		m2, err := newModule(m.f, libc, text)
		if err != nil {
			t.Fatal(err)
		}
		if m2.Bias != base || m2.Start != text[0].Start {
			t.Errorf("from the code mapping alone: Bias, Start = %#x, %#x; want %#x, %#x", m2.Bias, m2.Start, base, text[0].Start)
		}
	}
}

func gnuTriplet() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	default:
		return "x86_64-linux-gnu"
	}
}

func TestRealPythons(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(pyenvRoot(), "versions", "*", "lib", "libpython*.so.1.0"))
	for _, p := range []string{"/usr/bin/python3.11"} {
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		t.Skip("no libpython or python3.11 on this machine")
	}
	pyenvVersion := regexp.MustCompile(`/versions/(\d)\.(\d+)\.(\d+)/lib/`)
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			m := loadRealFile(t, path)
			for _, name := range RequiredSymbols {
				s, err := m.Lookup(name)
				if err != nil {
					t.Error(err)
					continue
				}
				if s.IFunc || s.Data || s.Addr == 0 {
					t.Errorf("%s = %+v", name, s)
				}
			}
			v, err := m.pythonVersion()
			if err != nil {
				t.Fatal(err)
			}
			want, ok := nameToVersion(path)
			if mm := pyenvVersion.FindStringSubmatch(path); mm != nil {
				a, _ := strconv.Atoi(mm[1])
				b, _ := strconv.Atoi(mm[2])
				c, _ := strconv.Atoi(mm[3])
				want, ok = Version{a, b, c}, true
			}
			if !ok {
				t.Fatalf("test bug: no version in %s", path)
			}
			// Before 3.11 (no Py_Version) the micro version may be unknown:
			// a pyenv build's PY_VERSION string is merged into the tail of
			// its prefix path, so the file name gives the version.
			microKnown := v.Micro >= 0 || !v.AtLeast(3, 11)
			if v.Major != want.Major || v.Minor != want.Minor || !microKnown ||
				(want.Micro >= 0 && v.Micro >= 0 && v.Micro != want.Micro) {
				t.Errorf("pythonVersion() = %v, want %v", v, want)
			}
		})
	}
}
