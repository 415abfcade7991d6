package symbols

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lptrace/lptrace/proc"
)

var interpreterName = regexp.MustCompile(`^python(\d)\.(\d+)$`)

// interpreters lists the Python interpreters installed on the machine:
// pyenv's, then the system's, one per real file.
func interpreters() []string {
	pyenv, _ := filepath.Glob(filepath.Join(pyenvRoot(), "versions", "*", "bin", "python3.*"))
	sort.Strings(pyenv)
	system, _ := filepath.Glob("/usr/bin/python3*")
	sort.Strings(system)
	var out []string
	seen := map[string]bool{}
	for _, p := range append(pyenv, system...) {
		if !interpreterName.MatchString(filepath.Base(p)) {
			continue // python3.12-config, python3.12-gdb.py, ...
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		if st, err := os.Stat(real); err != nil || st.Mode()&0o111 == 0 {
			continue
		}
		seen[real] = true
		out = append(out, p)
	}
	return out
}

// start runs a command that lives until the test ends.
func start(t *testing.T, name string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(stdout)
}

// waitForMapping waits until a file whose name matches re is mapped in
// process pid.
func waitForMapping(t *testing.T, pid int, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		maps, err := proc.ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range maps {
			if m.FileBacked() && re.MatchString(path.Base(m.Path)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: no file matching %s mapped after 10s", pid, re)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFindPython(t *testing.T) {
	pythons := interpreters()
	if len(pythons) == 0 {
		t.Skip("no Python 3 interpreter found")
	}
	for _, py := range pythons {
		t.Run(py, func(t *testing.T) {
			t.Parallel()
			cmd, stdout := start(t, py, "-c", "import sys, time; sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)")
			// Initialized: every library is mapped.
			line, err := stdout.ReadString('\n')
			if err != nil || line != "ready\n" {
				t.Fatalf("%s did not start: %q, %v", py, line, err)
			}
			pid := cmd.Process.Pid
			waitForMapping(t, pid, pythonName())

			tgt, err := Find(pid)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			t.Cleanup(tgt.Close)
			mm := interpreterName.FindStringSubmatch(filepath.Base(py))
			minor, _ := strconv.Atoi(mm[2])
			if tgt.Version.Major != 3 || tgt.Version.Minor != minor {
				t.Errorf("Version = %v, want 3.%d", tgt.Version, minor)
			}
			if tgt.PID != pid || len(tgt.Maps) == 0 {
				t.Errorf("PID, len(Maps) = %d, %d", tgt.PID, len(tgt.Maps))
			}
			if tgt.Python == nil {
				t.Fatal("Python = nil")
			}
			t.Logf("Python %v in %s", tgt.Version, tgt.Python.Path)
			for _, name := range RequiredSymbols {
				if s, err := tgt.Python.Lookup(name); err != nil || s.IFunc || !addrMapped(tgt.Maps, s.Addr, true) {
					t.Errorf("%s = %+v, %v: not a function in an executable mapping", name, s, err)
				}
			}
			if tgt.Libc == nil {
				t.Fatal("Libc = nil")
			}
			if !strings.Contains(path.Base(tgt.Libc.Path), "libc") {
				t.Errorf("Libc.Path = %q", tgt.Libc.Path)
			}
			if tgt.Libc.PadEnd-tgt.Libc.PadStart < 512 || tgt.Libc.PadStart > tgt.Libc.PadEnd {
				t.Errorf("libc padding [%#x, %#x): want at least 512 bytes", tgt.Libc.PadStart, tgt.Libc.PadEnd)
			}
			if !addrMapped(tgt.Maps, tgt.Libc.PadStart, true) || !addrMapped(tgt.Maps, tgt.Libc.PadEnd-1, true) {
				t.Errorf("libc padding [%#x, %#x) is not mapped executable", tgt.Libc.PadStart, tgt.Libc.PadEnd)
			}
			if munmap, err := tgt.Libc.Lookup("munmap"); err != nil || !addrMapped(tgt.Maps, munmap.Addr, true) {
				t.Errorf("munmap = %+v, %v", munmap, err)
			}
		})
	}
}

// addrMapped reports whether addr lies in a mapping (an executable one if
// exec).
func addrMapped(maps []proc.Mapping, addr uint64, exec bool) bool {
	for _, m := range maps {
		if addr >= m.Start && addr < m.End {
			return !exec || m.Exec()
		}
	}
	return false
}

func TestFindNotPython(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	cmd, _ := start(t, sleep, "30")
	waitForMapping(t, cmd.Process.Pid, libcName())
	tgt, err := Find(cmd.Process.Pid)
	if !errors.Is(err, ErrNotPython) {
		if tgt != nil {
			tgt.Close()
		}
		t.Fatalf("Find(sleep) = %+v, %v; want ErrNotPython", tgt, err)
	}
}

func TestFindNoProcess(t *testing.T) {
	const pid = 1 << 30 // above the kernel's PID_MAX_LIMIT
	if tgt, err := Find(pid); !errors.Is(err, proc.ErrNoProcess) {
		t.Fatalf("Find(%d) = %+v, %v; want proc.ErrNoProcess", pid, tgt, err)
	}
}
