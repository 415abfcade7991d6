package tests

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every installed Python, in every state that matters: lptrace exec prints
// the code's output, the target keeps its pace, a server keeps answering,
// nothing shows on the target's own output and nothing is left in /tmp.
func TestExecStates(t *testing.T) {
	modes := []string{"sleep", "accept", "cpu", "threads", "lock", "sigpipe"}
	for _, py := range pythons(t) {
		py := py
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range modes {
				t.Run(mode, func(t *testing.T) {
					tg := startTarget(t, py, mode)
					t0 := time.Now()
					for i := 0; i < 3; i++ {
						r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), fmt.Sprintf("print(STATE['mode'], %d)", i))
						want := fmt.Sprintf("%s %d\n", mode, i)
						if strings.HasPrefix(py.Name, "2.") {
							want = fmt.Sprintf("('%s', %d)\n", mode, i)
						}
						if r.Code != 0 || r.Stdout != want {
							t.Fatalf("exec #%d: exit %d, stdout %q, want %q; stderr:\n%s", i, r.Code, r.Stdout, want, r.Stderr)
						}
						if mode == "accept" {
							expectPong(t, tg.Port)
						}
					}
					tg.waitTicks(t, 3, 5*time.Second)
					if gap := tg.maxGap(t0); gap > scaled(700*time.Millisecond) {
						t.Errorf("the target's 100 ms heartbeat paused for %v while lptrace worked", gap)
					}
					tg.checkUntouched(t)
				})
			}
		})
	}
}

func expectPong(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 3*time.Second)
	if err != nil {
		t.Fatalf("server no longer answers: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil || string(buf) != "pong\n" {
		t.Fatalf("server answered %q, %v", buf, err)
	}
}

// newest returns the newest interpreter found, the one most users run.
func newest(t *testing.T) Python {
	ps := pythons(t)
	best := ps[0]
	for _, p := range ps {
		if versionKey(p.Name) > versionKey(best.Name) {
			best = p
		}
	}
	return best
}

// oldest returns the oldest interpreter found.
func oldest(t *testing.T) Python {
	ps := pythons(t)
	best := ps[0]
	for _, p := range ps {
		if versionKey(p.Name) < versionKey(best.Name) {
			best = p
		}
	}
	return best
}

func versionKey(name string) int {
	v := strings.TrimSuffix(strings.SplitN(name, "-", 2)[0], "t")
	parts := strings.SplitN(v, ".", 2)
	a, _ := strconv.Atoi(parts[0])
	b, _ := strconv.Atoi(parts[1])
	return a*100 + b
}

// The command line: code from an argument, stdin or a file; options before
// or after the PID; expressions print their value; exceptions give a
// traceback and exit status 1; SystemExit does not end the target.
func TestExecCommandLine(t *testing.T) {
	py := newest(t)
	tg := startTarget(t, py, "sleep")
	pid := strconv.Itoa(tg.PID)
	file := t.TempDir() + "/code.py"
	os.WriteFile(file, []byte("print('from a file')\n"), 0o644)
	cases := []struct {
		name      string
		stdin     string
		args      []string
		code      int
		stdout    string
		stderrHas string
	}{
		{"expression", "", []string{"exec", pid, "6 * 7"}, 0, "42\n", ""},
		{"statement", "", []string{"exec", pid, "x = 1"}, 0, "", ""},
		{"final expression shown", "", []string{"exec", pid, "x = 20\nx + 1"}, 0, "21\n", ""},
		{"None not shown", "", []string{"exec", pid, "None"}, 0, "", ""},
		{"stdin", "print('from stdin')", []string{"exec", pid, "-"}, 0, "from stdin\n", ""},
		{"file after pid", "", []string{"exec", pid, "--file", file}, 0, "from a file\n", ""},
		{"file before pid", "", []string{"exec", "--file", file, pid}, 0, "from a file\n", ""},
		{"timeout after code", "", []string{"exec", pid, "1", "--timeout", "5s"}, 0, "1\n", ""},
		{"double dash", "", []string{"exec", "--", pid, "2"}, 0, "2\n", ""},
		{"stderr", "", []string{"exec", pid, "import sys; _ = sys.stderr.write('oops\\n')"}, 0, "", "oops"},
		{"exception", "", []string{"exec", pid, "def f():\n    raise ValueError('bad')\nf()"}, 1, "", "ValueError: bad"},
		{"traceback of the user's frames", "", []string{"exec", pid, "def f():\n    raise ValueError('bad')\nf()"}, 1, "",
			"Traceback (most recent call last):\n  File \"<exec>\", line 3, in <module>\n  File \"<exec>\", line 2, in f\nValueError: bad"},
		{"syntax error", "", []string{"exec", pid, "def ("}, 1, "", "SyntaxError"},
		{"system exit", "", []string{"exec", pid, "import sys; sys.exit(3)"}, 1, "", "SystemExit: 3"},
		{"control characters escaped", "", []string{"exec", pid, "print('\\x1b[31mred\\x07')"}, 0, "\\x1b[31mred\\x07\n", ""},
		{"globals of __main__ visible", "", []string{"exec", pid, "MODE"}, 0, "'sleep'\n", ""},
		{"missing code", "", []string{"exec", pid}, 2, "", "missing CODE"},
		{"bad pid", "", []string{"exec", "12ab", "1"}, 2, "", "not a process ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := lptrace(t, c.stdin, c.args...)
			if r.Code != c.code || r.Stdout != c.stdout || !strings.Contains(r.Stderr, c.stderrHas) {
				t.Errorf("exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
					r.Code, r.Stdout, r.Stderr, c.code, c.stdout, c.stderrHas)
			}
		})
	}
	tg.waitTicks(t, 3, 5*time.Second)
	if !tg.Alive() {
		t.Fatal("target died")
	}
	if other := tg.Other(); len(other) > 0 {
		t.Errorf("the target's own stdout got %q", other)
	}
}

// Processes lptrace must refuse, each with one clear line and a non-zero
// exit, never a hang or a stack trace.
func TestExecRefuses(t *testing.T) {
	py := newest(t)
	sleeper := exec.Command("sleep", "60")
	sleeper.Start()
	defer sleeper.Process.Kill()

	stopped := startTarget(t, py, "sleep")
	syscall.Kill(stopped.PID, syscall.SIGSTOP)
	defer syscall.Kill(stopped.PID, syscall.SIGCONT)

	// A zombie: a child that exited, with a parent that does not reap it.
	parent := exec.Command(py.Path, "-c", "import os, sys, time\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid); sys.stdout.flush(); time.sleep(60)")
	out, _ := parent.StdoutPipe()
	parent.Start()
	defer parent.Process.Kill()
	var zombie int
	fmt.Fscan(out, &zombie)
	if !eventually(5*time.Second, func() bool { return procState(zombie) == "Z" && procState(stopped.PID) == "T" }) {
		t.Fatalf("not yet a zombie and a stopped process: states %q, %q", procState(zombie), procState(stopped.PID))
	}

	cases := []struct {
		name, pid, want string
	}{
		{"no such process", "4000000", "no such process"},
		{"not python", strconv.Itoa(sleeper.Process.Pid), "is not a Python process"},
		{"kernel thread", "2", "kernel thread"},
		{"zombie", strconv.Itoa(zombie), "zombie"},
		{"stopped", strconv.Itoa(stopped.PID), "is stopped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := lptrace(t, "", "exec", c.pid, "1")
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code == 0 || !strings.Contains(r.Stderr, c.want) || len(lines) != 1 || !strings.HasPrefix(lines[0], "lptrace: ") {
				t.Errorf("exit %d, stderr %q; want one line containing %q", r.Code, r.Stderr, c.want)
			}
		})
	}
	// Left stopped, as found.
	if st := procState(stopped.PID); st != "T" {
		t.Errorf("stopped target is now in state %q", st)
	}
	t.Run("itself", func(t *testing.T) {
		cmd := exec.Command("sh", "-c", `exec "$0" exec $$ 1`, lptraceBin)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lptrace itself") {
			t.Errorf("got %v: %s", err, out)
		}
	})
	// Refused by the kernel: the reason named at once, not after a timeout.
	target := startTarget(t, py, "sleep")
	t.Run("seccomp", func(t *testing.T) {
		if runtime.GOARCH != "amd64" {
			t.Skip("noptrace.py's filter is for x86-64")
		}
		if !hasModules(py, "ctypes") {
			t.Skip("noptrace.py sets its filter with ctypes")
		}
		r := lptraceAs(t, []string{py.Path, filepath.Join(filepath.Dir(targetScript), "noptrace.py")}, "", "exec", strconv.Itoa(target.PID), "1")
		if r.Code == 0 || !strings.Contains(r.Stderr, "seccomp filter on lptrace forbids ptrace") || r.Elapsed > 3*time.Second {
			t.Errorf("exit %d after %v, stderr %q", r.Code, r.Elapsed, r.Stderr)
		}
	})
	t.Run("no CAP_SYS_PTRACE", func(t *testing.T) {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil || os.Geteuid() != 0 {
			t.Skip("needs setpriv and root")
		}
		r := lptraceAs(t, []string{setpriv, "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"}, "", "exec", strconv.Itoa(target.PID), "1")
		if r.Code == 0 || !strings.Contains(r.Stderr, "lacks CAP_SYS_PTRACE") {
			t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
		}
	})
	target.checkUntouched(t)
	t.Run("already traced", func(t *testing.T) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			t.Skip("strace not installed")
		}
		tg := startTarget(t, py, "sleep")
		s := exec.Command(strace, "-p", strconv.Itoa(tg.PID), "-o", "/dev/null")
		s.Start()
		defer func() { s.Process.Signal(syscall.SIGTERM); s.Wait() }()
		for i := 0; i < 100 && tracerOf(tg.PID) == 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "1")
		if r.Code == 0 || !strings.Contains(r.Stderr, fmt.Sprintf("already traced by process %d (strace)", s.Process.Pid)) {
			t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
		}
	})
}

func procState(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// syscallOf is the number of the system call that thread tid of pid is
// blocked in, or -1 (running, or gone).
func syscallOf(pid, tid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	f := strings.Fields(string(data))
	if err != nil || len(f) == 0 {
		return -1
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return -1 // "running"
	}
	return nr
}

func tracerOf(pid int) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// A thread stuck in C code with the GIL held: no safe point comes, lptrace
// says so within its timeout, and the target goes on untouched: the queued
// code never runs once lptrace has given up.
func TestExecNoSafePoint(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			if !hasModules(py, "ctypes") {
				t.Skip("the target holds the GIL in C through ctypes")
			}
			tg := startTarget(t, py, "gilheld")
			// Inside the 3 s usleep: the main thread blocked in it.
			if !eventually(2*time.Second, func() bool {
				nr := syscallOf(tg.PID, tg.PID)
				return nr == unix.SYS_CLOCK_NANOSLEEP || nr == unix.SYS_NANOSLEEP
			}) {
				t.Fatalf("the main thread is not in its usleep (system call %d)", syscallOf(tg.PID, tg.PID))
			}
			r := lptrace(t, "", "exec", "--timeout", "1s", strconv.Itoa(tg.PID), "print('ran')")
			if r.Code == 0 || !strings.Contains(r.Stderr, "no thread could run Python code within 1s") || !strings.Contains(r.Stderr, "will not run") {
				t.Fatalf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
			}
			if r.Elapsed > 5*time.Second {
				t.Errorf("took %v with a 1s timeout", r.Elapsed)
			}
			tg.waitTicks(t, 3, 10*time.Second)
			tg.checkUntouched(t)
		})
	}
}

// lptrace killed with SIGKILL at random instants, mid-injection included:
// the target never dies or stalls, and the next lptrace works.
func TestExecTracerKilled(t *testing.T) {
	rounds := 8
	if os.Getenv("LPTRACE_TORTURE") != "" {
		rounds = 100
	}
	for _, py := range pythons(t) {
		for _, mode := range []string{"sleep", "cpu"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				tg := startTarget(t, py, mode)
				rng := rand.New(rand.NewSource(time.Now().UnixNano()))
				// Kill instants over the whole of an exec: 20 ms here, more
				// where one takes longer (the arm64 machine: a second).
				window := 20 * time.Millisecond
				if r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import time; time.sleep(0.01)"); r.Code == 0 {
					window = max(window, r.Elapsed*3/2)
				}
				t0 := time.Now()
				for i := 0; i < rounds; i++ {
					cmd := exec.Command(lptraceBin, "exec", strconv.Itoa(tg.PID), "import time; time.sleep(0.01); print(1)")
					cmd.Start()
					time.Sleep(time.Duration(rng.Int63n(int64(window))))
					cmd.Process.Kill()
					cmd.Wait()
					if !tg.Alive() {
						t.Fatalf("target died after lptrace was killed (round %d)", i)
					}
				}
				tg.waitTicks(t, 3, 5*time.Second)
				if gap := tg.maxGap(t0); gap > scaled(time.Second) {
					t.Errorf("heartbeat paused for %v", gap)
				}
				r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "print('still fine')")
				if r.Code != 0 || r.Stdout != "still fine\n" {
					t.Fatalf("after the kills: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
				}
				if other := tg.Other(); len(other) > 0 {
					t.Errorf("the target's own stdout got %q", other)
				}
			})
		}
	}
}

// A target running as an unprivileged user, traced by root; and lptrace run
// by that same user on its own process.
func TestExecOtherUser(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	// An interpreter that user nobody can run (not under /root).
	var py Python
	for _, p := range pythons(t) {
		if !strings.HasPrefix(p.Path, "/root/") {
			py = p
		}
	}
	if py.Path == "" {
		t.Skip("no interpreter outside /root for user nobody")
	}
	os.Chmod(targetScript, 0o644)
	for d := targetScript; d != "/"; {
		d = d[:strings.LastIndexByte(d, '/')]
		if d == "" {
			break
		}
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users", d)
		}
	}
	asNobody := []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
	tg := startTarget(t, py, "sleep", asNobody...)
	t.Run("root traces nobody", func(t *testing.T) {
		r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import os; print(os.getuid())")
		if r.Code != 0 || r.Stdout != "65534\n" {
			t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	})
	t.Run("nobody traces itself", func(t *testing.T) {
		r := lptraceAs(t, asNobody, "", "exec", strconv.Itoa(tg.PID), "import os; print(os.getuid())")
		if r.Code != 0 || r.Stdout != "65534\n" {
			t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	})
	t.Run("nobody cannot trace root", func(t *testing.T) {
		root := startTarget(t, py, "sleep")
		r := lptraceAs(t, asNobody, "", "exec", strconv.Itoa(root.PID), "1")
		if r.Code == 0 || !strings.Contains(r.Stderr, "run lptrace as root") {
			t.Fatalf("exit %d stderr %q", r.Code, r.Stderr)
		}
	})
	if !tg.Alive() {
		t.Fatal("target died")
	}
	if l := leftovers(); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}
