package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// Threads a launched program starts are traced, with and without the
// machine-code callback.
func TestLaunchThreads(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	script := filepath.Join(dir, "threads.py")
	if err := os.WriteFile(script, []byte(threadScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, opts := range [][]string{nil, {"--no-native"}} {
				r := lptrace(t, "", append(opts, "--", py.Path, script)...)
				if r.Code != 0 {
					t.Fatalf("%v: exit %d: %s", opts, r.Code, r.Stderr)
				}
				tids := map[string]int{}
				work := regexp.MustCompile(`(?m)^\[tid (\d+)(?: [^\]]*)?\] work `)
				for _, m := range work.FindAllStringSubmatch(r.Stderr, -1) {
					tids[m[1]]++
				}
				if len(tids) != 3 {
					t.Errorf("%v: work() traced in %d threads (%v), want 3:\n%s", opts, len(tids), tids, head(r.Stderr, 20))
				}
				for tid, n := range tids {
					if n != 5 {
						t.Errorf("%v: thread %s: %d calls of work(), want 5", opts, tid, n)
					}
				}
			}
		})
	}
}

func TestLaunch(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	script := filepath.Join(dir, "app.py")
	if err := os.WriteFile(script, []byte(launchScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			r := lptrace(t, "", "-T", "--ret", "--", py.Path, script)
			if r.Code != 3 || r.Stdout != "hello world\n" {
				t.Fatalf("exit %d, stdout %q (want 3, the program's); stderr:\n%s", r.Code, r.Stdout, r.Stderr)
			}
			want := []string{"<module> (" + script + ":1)", "main (" + script + ":4)", "greet (" + script + ":2)", "<- greet = 'hello world' <"}
			at := 0
			for _, w := range want {
				i := strings.Index(r.Stderr[at:], w)
				if i < 0 {
					t.Fatalf("%q missing or out of order:\n%s", w, head(r.Stderr, 30))
				}
				at += i
			}
			first := strings.SplitN(r.Stderr, "\n", 3)
			if len(first) < 2 || !strings.HasPrefix(first[1], "<module> ("+script) {
				t.Errorf("the trace does not start at the script:\n%s", head(r.Stderr, 10))
			}
			if strings.Contains(r.Stderr, "site.py") {
				t.Errorf("the interpreter's start-up is in the trace")
			}
		})
	}
	py := pythons(t)[0]
	t.Run("signal", func(t *testing.T) {
		cmd := exec.Command(lptraceBin, "--", py.Path, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
		err := cmd.Run()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("lptrace ended with %v, want killed by SIGTERM like the program", cmd.ProcessState)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := lptrace(t, "", "--", "no-such-program-lptrace")
		if r.Code != 127 || !strings.Contains(r.Stderr, "cannot run no-such-program-lptrace") {
			t.Errorf("exit %d: %s", r.Code, r.Stderr)
		}
	})
	t.Run("not python", func(t *testing.T) {
		r := lptrace(t, "", "--", "/bin/sh", "-c", "exit 5")
		if r.Code != 5 || !strings.Contains(r.Stderr, "before any Python code ran") {
			t.Errorf("exit %d: %s", r.Code, r.Stderr)
		}
	})
	t.Run("unprivileged", func(t *testing.T) {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil || os.Geteuid() != 0 {
			t.Skip("needs setpriv and root to switch users")
		}
		var other Python
		for _, p := range pythons(t) {
			if !strings.HasPrefix(p.Path, "/root/") {
				other = p
			}
		}
		if other.Path == "" || !searchable(lptraceBin) || !searchable(script) {
			t.Skip("no interpreter, script or lptrace that user nobody can run")
		}
		r := lptraceAs(t, []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}, "", "--", other.Path, script)
		if r.Code != 3 || !strings.Contains(r.Stderr, "greet (") {
			t.Errorf("as nobody: exit %d: %s", r.Code, r.Stderr)
		}
	})
	if l := leftovers(); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

// A program that exits right after a burst of calls: every call is in the
// trace (the hook's exit handler waits for its timer thread's write and
// empties the machine-code callback's ring), or the loss is reported.
func TestLaunchCompleteAtExit(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	script := filepath.Join(dir, "burst.py")
	if err := os.WriteFile(script, []byte("def f():\n    pass\nfor i in range(100000):\n    f()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, opts := range [][]string{nil, {"--no-native"}} {
				out := filepath.Join(t.TempDir(), "trace")
				r := lptrace(t, "", append(append([]string{"-o", out}, opts...), "--", py.Path, script)...)
				if r.Code != 0 {
					t.Fatalf("%v: exit %d: %s", opts, r.Code, r.Stderr)
				}
				data, _ := os.ReadFile(out)
				n := len(regexp.MustCompile(`(?m)^(\[tid \d+(?: [^\]]*)?\] )?f \(`+regexp.QuoteMeta(script)).FindAllIndex(data, -1))
				if n != 100000 && !strings.Contains(r.Stderr, "dropped") {
					t.Errorf("%v: %d calls of f in the trace, want 100000 (stderr %q)", opts, n, r.Stderr)
				}
				// Nothing but the program's one thread: the hook's timer
				// thread uses library code (ctypes) that must not show.
				if i := strings.Index(string(data), "[tid "); i >= 0 {
					t.Errorf("%v: a second thread in the trace: %q", opts, head(string(data[i:]), 3))
				}
			}
		})
	}
}

// Launch mode's -E (VAR=VALUE sets, with its commas; VAR removes) and -u
// USER (the program runs as that user, with its groups, and is traced);
// both refused when attaching.
func TestLaunchEnvAndUser(t *testing.T) {
	prog := filepath.Join(programsDir, "environment.py")
	py := newest(t)
	r := lptrace(t, "", "-q", "-a", "-e", "show", "-E", "LPV=a,b", "-E", "HOME", "--", py.Path, prog)
	if r.Code != 0 || !strings.Contains(r.Stderr, "show(uid=0, gid=0, lpv='a,b', home=None) (") {
		t.Errorf("-E: status %d:\n%s", r.Code, r.Stderr)
	}
	if r = lptrace(t, "", "-p", "1", "-E", "A=1"); r.Code != 2 || !strings.Contains(r.Stderr, "apply to a program lptrace starts") {
		t.Errorf("-p with -E: status %d: %s", r.Code, r.Stderr)
	}
	if r = lptrace(t, "", "-u", "no_such_user_here", "--", py.Path, prog); r.Code != 2 || !strings.Contains(r.Stderr, "no such user") {
		t.Errorf("-u no_such_user_here: status %d: %s", r.Code, r.Stderr)
	}
	var other Python
	for _, p := range pythons(t) {
		if !strings.HasPrefix(p.Path, "/root/") {
			other = p
		}
	}
	if os.Geteuid() != 0 || other.Path == "" || !searchable(prog) {
		t.Skip("-u: needs root, and an interpreter and program that user nobody can run")
	}
	r = lptrace(t, "", "-q", "-a", "-e", "show", "-u", "nobody", "--", other.Path, prog)
	if r.Code != 0 || !strings.Contains(r.Stderr, "show(uid=65534, gid=65534, ") {
		t.Errorf("-u nobody: status %d:\n%s", r.Code, r.Stderr)
	}
}
