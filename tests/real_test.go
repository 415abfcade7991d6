package tests

// Real programs that nobody here wrote, or that are written as such programs
// are (tests/programs/): servers from the standard library and Debian's
// packages, programs with tracers of their own, deep recursion, and
// programs that die. Each test checks that the program behaves and answers
// as before, that what lptrace must leave as it was is as it was (threads,
// signal masks and handlers, trace and profile functions, monitoring tools,
// switch interval, recursion limit, descriptors, mappings), and that the
// expected functions are in the trace.

import (
	"bufio"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var programsDir, _ = filepath.Abs("programs")

// startProgram runs tests/programs/NAME with py and waits until it is ready.
func startProgram(t *testing.T, py Python, name string, args ...string) *Target {
	t.Helper()
	return startScript(t, py, append([]string{filepath.Join(programsDir, name)}, args...))
}

// client is a line-based connection to a program's server.
type client struct {
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, port int) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the program: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{conn: conn, r: bufio.NewReader(conn)}
}

// ask sends one line and returns the answer line.
func (c *client) ask(t *testing.T, line string) string {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s\n", line); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
	ans, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %q: %v", line, err)
	}
	return strings.TrimRight(ans, "\n")
}

// ask opens a connection for one question.
func ask(t *testing.T, port int, line string) string {
	t.Helper()
	return dial(t, port).ask(t, line)
}

// waitCall waits until fn shows in the trace.
func (tr *Tracer) waitCall(t *testing.T, fn string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for calls(tr.Trace())[fn] == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s not in the trace after %v:\n%s\nlptrace: %s", fn, within, tr.Trace(), tr.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// osState is what the kernel shows of a process that lptrace must leave as
// it was: its threads with their names and signal masks, its signal
// handlers, its descriptors and lptrace's mappings.
type osState struct {
	threads  []string // "name blocked-mask", sorted
	handlers string   // caught and ignored signals
	fds      []string
	rings    int
}

func readOSState(pid int) osState {
	var s osState
	tids, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range tids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			continue
		}
		f := statusFields(string(data))
		s.threads = append(s.threads, f["Name"]+" blocks "+f["SigBlk"])
		// Signals 32 and 33 are the C library's own (thread cancellation,
		// setuid in every thread): glibc sets their handlers at the first
		// thread a process starts, whoever starts it.
		s.handlers = "caught " + withoutLibcSignals(f["SigCgt"]) + " ignored " + f["SigIgn"]
	}
	sort.Strings(s.threads)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if strings.HasPrefix(target, "socket:") {
			continue // the program's clients come and go (lptrace uses none)
		}
		if strings.Contains(filepath.Base(target), "libffi.so") {
			// libffi 3.4 opens its own file when ctypes is imported, which
			// the hook does where ctypes was not (a known limit,
			// docs/safety.md): once per process, not per session.
			continue
		}
		if strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "anon_inode:") {
			target = strings.SplitN(target, ":", 2)[0] // their numbers change with the program's own work
		}
		s.fds = append(s.fds, target)
	}
	sort.Strings(s.fds)
	s.rings = nativeMappings(pid)
	return s
}

func withoutLibcSignals(mask string) string {
	m, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		return mask
	}
	return fmt.Sprintf("%016x", m&^(3<<31))
}

func statusFields(status string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	return f
}

func (s osState) String() string {
	return fmt.Sprintf("threads %q, %s, fds %q, %d rings", s.threads, s.handlers, s.fds, s.rings)
}

// checkLeftAsItWas waits until what the program shows of itself (its
// fingerprint, see programs/fingerprint.py, from state()) and what the
// kernel shows of it are as before lptrace came: the hook leaves from
// inside the program, a moment after lptrace detached.
func checkLeftAsItWas(t *testing.T, pid int, before osState, fingerprint string, state func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		now, fp := readOSState(pid), ""
		if state != nil {
			fp = state()
		}
		if now.String() == before.String() && fp == fingerprint {
			break
		}
		if time.Now().After(deadline) {
			if now.String() != before.String() {
				t.Errorf("the process is not as before lptrace came:\n  before %v\n  after  %v", before, now)
			}
			if fp != fingerprint {
				t.Errorf("the program is not as before lptrace came:\n  before %s\n  after  %s", fingerprint, fp)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l := leftovers(); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

// An idle asyncio server waits in epoll_wait, with no timeout at all (or
// with one, when timers are due): exec, stack and attach reach it at once,
// it answers throughout and after, and nothing of lptrace stays. Every
// idle asyncio or aiohttp server is in this state.
func TestRealAsyncioServer(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue
		}
		for _, mode := range []string{"idle", "timers"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				tg := startProgram(t, py, "asyncio_server.py", mode)
				pid := strconv.Itoa(tg.PID)
				c := dial(t, tg.Port)
				state := func() string { return c.ask(t, "state") }
				fp := state() // (the server has accepted the connection)
				before := readOSState(tg.PID)

				r := lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7")
				if r.Code != 0 || r.Stdout != "42\n" {
					t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				r = lptrace(t, "", "stack", "--timeout", "10s", pid)
				if r.Code != 0 || !strings.Contains(r.Stdout, "select") {
					t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				tr := startAttach(t, tg.PID, "--timeout", "10s")
				for i := 0; i < 50; i++ {
					if got := c.ask(t, fmt.Sprintf("hello %d", i)); got != fmt.Sprintf("echo hello %d", i) {
						t.Fatalf("answer %q while traced", got)
					}
				}
				tr.waitCall(t, "handle_line", 5*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, fp, state)
			})
		}
	}
}

// A thread stopped by lptrace inside epoll_wait comes back from it with
// EINTR, which the kernel never restarts: Python 3 waits again, Python
// 2.7's epoll.poll raises IOError. lptrace restarts the call itself where
// it had no timeout (and on 2.7): the program never sees an error, and
// keeps answering.
func TestRealEpollServer(t *testing.T) {
	for _, py := range pythons(t) {
		for _, timeout := range []string{"-", "0.2"} {
			name := py.Name + "/forever"
			if timeout != "-" {
				name = py.Name + "/timeout"
			}
			t.Run(name, func(t *testing.T) {
				tg := startProgram(t, py, "epoll_server.py", timeout)
				pid := strconv.Itoa(tg.PID)
				c := dial(t, tg.Port)
				state := func() string { return c.ask(t, "state") }
				fp := state()
				before := readOSState(tg.PID)
				for i := 0; i < 3; i++ {
					if r := lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7"); r.Code != 0 || r.Stdout != "42\n" {
						t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
					}
				}
				if r := lptrace(t, "", "stack", "--timeout", "10s", pid); r.Code != 0 || !strings.Contains(r.Stdout, "epoll_server.py") {
					t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				tr := startAttach(t, tg.PID, "--timeout", "10s")
				if got := c.ask(t, "hello"); got != "echo hello" {
					t.Fatalf("answer %q while traced", got)
				}
				tr.waitCall(t, "handle_line", 5*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, fp, state)
				if other := tg.Other(); len(other) > 0 {
					t.Errorf("the program printed %q", other)
				}
			})
		}
	}
}

// Every way the standard library blocks is a place where lptrace runs
// code directly (the thread released the GIL): a thread blocked in each
// one takes an exec of its own, and the program goes on. The audit of the
// list of such system calls, on every version.
func TestRealStdlibBlockingCalls(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "blockers.py")
			pid := strconv.Itoa(tg.PID)
			var names []string
			for _, line := range tg.Other() {
				f := strings.Fields(line)
				if len(f) != 3 || f[0] != "BLOCKS" {
					continue
				}
				names = append(names, f[1])
				r := lptrace(t, "", "exec", "-v", "--tid", f[2], "--timeout", "3s", pid, "6 * 7")
				if r.Code != 0 || r.Stdout != "42\n" || !strings.Contains(r.Stderr, "parked in") {
					syscall, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", tg.PID, f[2]))
					t.Errorf("thread blocked in %s (syscall %s): status %d, %q %s", f[1], strings.Fields(string(syscall) + " ?")[0], r.Code, r.Stdout, r.Stderr)
				}
			}
			if len(names) < 15 {
				t.Fatalf("only %d blocking threads: %v", len(names), names)
			}
			if !tg.Alive() {
				t.Fatal("the program died")
			}
		})
	}
}

// A program running isolated subinterpreters (3.12+), each computing in a
// thread of its own: sys._current_frames() aborts such a program on 3.12
// and 3.13 (it makes frame objects of every interpreter with its own
// allocator), so lptrace never calls it there. stack, exec and attach
// work, and the program goes on.
func TestRealSubinterpreters(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 12) {
			continue
		}
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "subinterpreters.py")
			pid := strconv.Itoa(tg.PID)
			for i := 0; i < 10 && !hasModules(py, "ctypes"); i++ {
				// Only ctypes reads them safely there: refused in one line.
				r := lptrace(t, "", "stack", pid)
				if r.Code == 0 || !strings.Contains(r.Stderr, "cannot read the stacks: the stacks of a program that runs subinterpreters can only be read with ctypes, which this Python lacks") || strings.Count(r.Stderr, "\n") != 1 {
					t.Fatalf("stack without ctypes: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
			}
			for i := 0; i < 10 && hasModules(py, "ctypes"); i++ {
				r := lptrace(t, "", "stack", pid)
				if r.Code != 0 || !strings.Contains(r.Stdout, "MainThread") || strings.Count(r.Stdout, "in run_sub") != 2 {
					t.Fatalf("stack %d: status %d, %q %s (the program printed %q)", i, r.Code, r.Stdout, r.Stderr, tg.Stderr())
				}
			}
			if r := lptrace(t, "", "exec", pid, "main_work()"); r.Code != 0 || r.Stdout != "4950\n" {
				t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			tr := startAttach(t, tg.PID)
			tr.waitCall(t, "main_work", 5*time.Second)
			tr.Stop(t, syscall.SIGINT)
			tg.waitTicks(t, 3, 5*time.Second)
			if !tg.Alive() {
				t.Fatalf("the program died: %q", tg.Stderr())
			}
		})
	}
}

// hasModules tells whether py can import every module named.
func hasModules(py Python, mods ...string) bool {
	return exec.Command(py.Path, "-c", "import "+strings.Join(mods, ", ")).Run() == nil
}

// pythonsWith is the interpreters that have the modules; the test is
// skipped when none has (.ci/run installs Debian's packages of them).
func pythonsWith(t *testing.T, mods ...string) []Python {
	var out []Python
	for _, py := range pythons(t) {
		if hasModules(py, mods...) {
			out = append(out, py)
		}
	}
	if len(out) == 0 {
		t.Skipf("no interpreter here has %v", mods)
	}
	return out
}

// A gevent program (monkey-patched: threads, locks and sleeps are
// greenlets on the main OS thread). lptrace's timer thread is a real
// thread, not a greenlet whose signal mask would stay on the main thread:
// after a session the program's SIGTERM handler still runs (exit status
// 3), its main thread blocks no signal, and a second session works.
func TestRealGevent(t *testing.T) {
	for _, py := range pythonsWith(t, "gevent") {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "gevent_app.py")
			pid := strconv.Itoa(tg.PID)
			c := dial(t, tg.Port)
			state := func() string { return c.ask(t, "state") }
			fp := state()
			before := readOSState(tg.PID)
			for session := 0; session < 2; session++ {
				tr := startAttach(t, tg.PID)
				if got := c.ask(t, "hello"); got != "echo hello" {
					t.Fatalf("answer %q while traced", got)
				}
				tr.waitCall(t, "handle_line", 5*time.Second)
				tr.waitCall(t, "green_step", 5*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, fp, state)
			}
			if r := lptrace(t, "", "exec", pid, "counts[0] > 0"); r.Code != 0 || r.Stdout != "True\n" {
				t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			if r := lptrace(t, "", "stack", pid); r.Code != 0 || !strings.Contains(r.Stdout, "gevent") {
				t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			checkLeftAsItWas(t, tg.PID, before, fp, state)
			syscall.Kill(tg.PID, syscall.SIGTERM)
			if st := tg.exit(t, 10*time.Second); !st.Exited() || st.ExitStatus() != 3 {
				t.Errorf("after SIGTERM the program ended with %v, want its handler's exit status 3", st)
			}
		})
	}
}

// gunicorn with gevent workers serving a Flask application: a traced worker
// answers, its view shows in the trace, and after the session gunicorn's
// graceful shutdown still works (the worker's SIGTERM handler runs: it
// says "Worker exiting" rather than being killed at the end of the
// graceful timeout).
func TestRealGunicornGevent(t *testing.T) {
	for _, py := range pythonsWith(t, "gevent", "gunicorn", "flask") {
		t.Run(py.Name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			cmd := exec.Command(py.Path, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--graceful-timeout", "8",
				"-b", fmt.Sprintf("127.0.0.1:%d", port), "--chdir", programsDir, "flask_app:app")
			var log syncBuffer
			cmd.Stdout, cmd.Stderr = &log, &log
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-waited })
			get := func(path string) string {
				resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
				if err != nil {
					return "error: " + err.Error()
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return string(body)
			}
			for i := 0; get("/hello/start") != "hello start"; i++ {
				if i > 200 {
					t.Fatalf("gunicorn does not answer: %s", log.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			workers := strings.Fields(string(children))
			if len(workers) != 1 {
				t.Fatalf("workers: %v", workers)
			}
			worker, _ := strconv.Atoi(workers[0])
			before := readOSState(worker)
			tr := startAttach(t, worker)
			for i := 0; i < 20; i++ {
				if got := get(fmt.Sprintf("/hello/%d", i)); got != fmt.Sprintf("hello %d", i) {
					t.Fatalf("answer %q while traced", got)
				}
			}
			tr.waitCall(t, "greeting", 5*time.Second)
			tr.Stop(t, syscall.SIGINT)
			checkLeftAsItWas(t, worker, before, "", nil)
			if got := get("/hello/after"); got != "hello after" {
				t.Fatalf("answer %q after the session", got)
			}
			syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(20 * time.Second):
				t.Fatalf("gunicorn did not stop 20 s after SIGTERM: %s", log.String())
			}
			waited <- nil
			if out := log.String(); !strings.Contains(out, fmt.Sprintf("Worker exiting (pid: %d)", worker)) || strings.Contains(out, "SIGKILL") {
				t.Errorf("the worker did not shut down gracefully:\n%s", out)
			}
		})
	}
}

// numpy multiplying matrices with its BLAS (OpenBLAS when .ci/run installs
// it): the main thread is in a long C call with the GIL released, and
// BLAS's threads compute beside it (or none, with OPENBLAS_NUM_THREADS=1).
// No thread is parked and none runs Python: the code is queued from a
// thread in the BLAS library and runs when the product returns. A call
// that does not return within --timeout is named in the error.
func TestRealNumpyBLAS(t *testing.T) {
	for _, py := range pythonsWith(t, "numpy") {
		for _, mode := range []string{"threads", "single"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				var env []string
				if mode == "single" {
					env = []string{"OPENBLAS_NUM_THREADS=1"}
				}
				tg := startScriptEnv(t, py, env, []string{filepath.Join(programsDir, "numpy_blas.py"), "1200"})
				tg.waitTicks(t, 2, 20*time.Second)
				pid := strconv.Itoa(tg.PID)
				before := readOSState(tg.PID)
				if r := lptrace(t, "", "exec", "--timeout", "20s", pid, "a.shape"); r.Code != 0 || r.Stdout != "(1200, 1200)\n" {
					t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				if r := lptrace(t, "", "stack", "--timeout", "20s", pid); r.Code != 0 || !strings.Contains(r.Stdout, "numpy_blas.py") {
					t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				tr := startAttach(t, tg.PID, "--timeout", "20s")
				tr.waitCall(t, "product", 20*time.Second)
				tr.Stop(t, syscall.SIGINT)
				checkLeftAsItWas(t, tg.PID, before, "", nil)
				tg.waitTicks(t, 1, 20*time.Second)
			})
		}
		t.Run(py.Name+"/long", func(t *testing.T) {
			// One product of a minute: the code cannot run within 1 s.
			tg := startScriptEnv(t, py, []string{"OPENBLAS_NUM_THREADS=1"}, []string{filepath.Join(programsDir, "numpy_blas.py"), "6000"})
			r := lptrace(t, "", "exec", "--timeout", "1s", strconv.Itoa(tg.PID), "a.shape")
			if r.Code == 0 || !strings.Contains(r.Stderr, "did not come back to the interpreter") || !strings.Contains(r.Stderr, ".so") {
				t.Errorf("exec during a minute-long product: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			if !tg.Alive() {
				t.Fatal("the program died")
			}
		})
	}
}

// Free-threaded CPython (3.13t, --disable-gil): exec and stack work in the
// states that matter there (threads computing at once, never
// blocking; a busy program doing I/O, lock waits and subprocesses; a
// thread blocked on a lock; the main thread computing), and the program
// sees no error and keeps its pace. Tracing and pdb are refused in one line,
// before anything is done, and launch mode runs the program untraced.
func TestFreeThreaded(t *testing.T) {
	fts := freeThreadedPythons()
	if len(fts) == 0 {
		t.Skip("no free-threaded interpreter here (../shared/more-pythons.sh builds one)")
	}
	for _, py := range fts {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "spinners.py")
			tg.waitTicks(t, 2, 20*time.Second)
			pid := strconv.Itoa(tg.PID)
			before := readOSState(tg.PID)
			t0 := time.Now()
			recording := filepath.Join(t.TempDir(), "r.svg")
			for _, args := range [][]string{{"attach", "--duration", "2s", pid}, {"-c", "-p", pid}, {"record", "-o", recording, pid}} {
				r := lptrace(t, "", args...)
				if r.Code == 0 || !strings.Contains(r.Stderr, "cannot trace "+pid+": it runs a free-threaded") || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 0 {
					t.Errorf("%v: status %d, %q %q", args, r.Code, r.Stdout, r.Stderr)
				}
			}
			if _, err := os.Stat(recording); err == nil {
				t.Errorf("a refused record left %s", recording)
			}
			r := lptrace(t, "", "--", py.Path, "-c", "print('untraced')")
			if r.Code != 0 || !strings.Contains(r.Stderr, "free-threaded") || !strings.Contains(r.Stdout+r.Stderr, "untraced") {
				t.Errorf("launch: status %d, %q %q", r.Code, r.Stdout, r.Stderr)
			}
			for i := 0; i < 5; i++ {
				if r := lptrace(t, "", "exec", pid, "sum(range(10))"); r.Code != 0 || r.Stdout != "45\n" {
					t.Fatalf("exec %d: status %d, %q %q", i, r.Code, r.Stdout, r.Stderr)
				}
				st := lptrace(t, "", "stack", pid)
				if st.Code != 0 || strings.Count(st.Stdout, "in spin_step")+strings.Count(st.Stdout, "in spin\n") < 4 || !strings.Contains(st.Stdout, "(MainThread)") {
					t.Fatalf("stack %d: status %d, want the 4 spinners and the main thread:\n%s%s", i, st.Code, st.Stdout, st.Stderr)
				}
			}
			// pdb hung the program's main thread in class creation, waiting
			// for the type lock: refused for now.
			if r := lptrace(t, "p 6 * 7\nc\n", "pdb", pid); r.Code == 0 || !strings.Contains(r.Stderr, "cannot debug "+pid+": it runs a free-threaded") {
				t.Errorf("pdb: status %d, %q %q", r.Code, r.Stdout, r.Stderr)
			}
			tg.waitTicks(t, 2, 20*time.Second)
			checkLeftAsItWas(t, tg.PID, before, "", nil)
			// Its four threads compute at once beside the heartbeat: on this
			// 2-core machine under the suite's load the heartbeat pauses
			// 0.6 s without lptrace (measured); a hung payload paused it
			// 6.5 and 15 s.
			if gap := tg.maxGap(t0); gap > 2*time.Second {
				t.Errorf("heartbeat paused for %v", gap)
			}
		})
		for _, mode := range []string{"load", "lock", "cpu"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				tg := startTarget(t, py, mode)
				pid := strconv.Itoa(tg.PID)
				t0 := time.Now()
				for i := 0; i < 10; i++ {
					if r := lptrace(t, "", "exec", pid, "import threading; len(threading.enumerate()) > 0"); r.Code != 0 || r.Stdout != "True\n" {
						t.Fatalf("exec %d: status %d, %q %q", i, r.Code, r.Stdout, r.Stderr)
					}
					if st := lptrace(t, "", "stack", pid); st.Code != 0 || !strings.Contains(st.Stdout, "(MainThread)") {
						t.Fatalf("stack %d: status %d:\n%s%s", i, st.Code, st.Stdout, st.Stderr)
					}
				}
				if mode == "load" {
					if r := lptrace(t, "", "exec", pid, "import __main__; __main__.STATE['errors']"); r.Stdout != "0\n" {
						t.Errorf("the program saw errors of its own: %q %q", r.Stdout, r.Stderr)
					}
				}
				if gap := tg.maxGap(t0); gap > time.Second {
					t.Errorf("heartbeat paused for %v", gap)
				}
				tg.checkUntouched(t)
			})
		}
	}
}

// Four threads spinning on a tiny function, never blocking: the classic
// "my server is at 100% CPU, what is it doing?". No such thread reaches a
// safe point of its own; before 3.12 the hook sets every thread's profile
// function from where it runs (as 3.12's PyEval_SetProfileAllThreads does),
// and takes it back the same way: the trace shows all four threads, the
// summary counts their calls, and after the session no thread keeps
// lptrace's profile function (sys.getprofile() is None at once, even in a
// thread that makes no Python call).
func TestRealCPUBoundThreads(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "spinners.py")
			tg.waitTicks(t, 2, 10*time.Second)
			pid := strconv.Itoa(tg.PID)
			before := readOSState(tg.PID)
			profiles := "import sys, threading; print(sys.getprofile(), getattr(threading, '_profile_hook', None))"
			idle := lptrace(t, "", "exec", pid, profiles)
			tr := startAttach(t, tg.PID)
			deadline := time.Now().Add(10 * time.Second)
			for len(calls(tr.Trace())["spin_step"]) < 4 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			tr.Stop(t, syscall.SIGINT)
			if got := calls(tr.Trace())["spin_step"]; len(got) != 4 {
				t.Errorf("spin_step traced in %d threads, want 4 (%s)", len(got), tr.Stderr())
			}
			// The exec runs in the main thread, which makes no Python call
			// of its own (it sleeps and writes in C).
			if r := lptrace(t, "", "exec", pid, profiles); r.Stdout != idle.Stdout {
				t.Errorf("after the session: %q, before: %q %s", r.Stdout, idle.Stdout, r.Stderr)
			}
			r := lptrace(t, "", "attach", "--duration", "1s", "-c", pid)
			if !regexp.MustCompile(`\d+ +spin_step`).MatchString(r.Stdout + r.Stderr) {
				t.Errorf("-c counted no spin_step: %s", r.Stdout+r.Stderr)
			}
			hookGone(t, tg.PID, 2*time.Second)
			checkLeftAsItWas(t, tg.PID, before, "", nil)
		})
	}
}

// Two lptraces at the same instant on one process: the one that finds a
// thread held by the other waits for it or takes another thread, within
// its --timeout, instead of saying "ptrace not permitted ... run as root"
// to root; and a stack taken during another session lists every thread.
func TestRealTwoSessions(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			tg := startTarget(t, py, "threads")
			pid := strconv.Itoa(tg.PID)
			alone := lptrace(t, "", "stack", pid)
			threadLine := regexp.MustCompile(`(?m)^Thread `)
			threads := len(threadLine.FindAllString(alone.Stdout, -1))
			for round := 0; round < 3; round++ {
				var wg sync.WaitGroup
				results := make([]Result, 2)
				for i := range results {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i] = lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7")
					}()
				}
				wg.Wait()
				for _, r := range results {
					if r.Code != 0 || r.Stdout != "42\n" {
						t.Errorf("exec beside exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
					}
				}
				for i := range results {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i] = lptrace(t, "", "attach", "--duration", "1s", "--timeout", "10s", "-o", "/dev/null", pid)
					}()
				}
				time.Sleep(time.Duration(300+200*round) * time.Millisecond)
				st := lptrace(t, "", "stack", "--timeout", "10s", pid)
				wg.Wait()
				for _, r := range results {
					if r.Code != 0 || !strings.Contains(r.Stderr, "attached") {
						t.Errorf("attach beside attach: status %d, %s", r.Code, r.Stderr)
					}
				}
				if n := len(threadLine.FindAllString(st.Stdout, -1)); st.Code != 0 || n != threads || strings.Contains(st.Stdout, "<lptrace>") {
					t.Errorf("stack during two sessions: status %d, %d threads (alone: %d):\n%s%s", st.Code, n, threads, st.Stdout, st.Stderr)
				}
			}
			hookGone(t, tg.PID, 3*time.Second)
			tg.checkUntouched(t)
		})
	}
}

// A program with its own trace and profile functions in every thread (and
// a sys.monitoring tool on 3.12+): lptrace's code runs with the thread
// marked as tracing, so the program's tools never see it (before, they saw
// 1,000-5,000 events of lptrace's functions and imports per command), and
// they go on working; when lptrace says "detached", the program's profile
// function is back and lptrace's tool ID is free, at once.
func TestRealOwnTracers(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "own_tracers.py")
			c := dial(t, tg.Port)
			fp := c.ask(t, "state")
			c.ask(t, "seen")
			lptraceCode := func(seen string, allowUserCode bool) []string {
				var ours []string
				for _, s := range strings.Split(seen, ";") {
					file, name, _ := strings.Cut(s, ":")
					switch {
					case allowUserCode && file == "<lptrace>" && name == "<module>":
					case file == "<lptrace>", file == "<string>", strings.Contains(file, "importlib"):
						ours = append(ours, s)
					}
				}
				return ours
			}
			pid := strconv.Itoa(tg.PID)
			if r := lptrace(t, "", "exec", pid, "x = 6 * 7"); r.Code != 0 {
				t.Fatalf("exec: %s", r.Stderr)
			}
			if ours := lptraceCode(c.ask(t, "seen"), true); len(ours) > 0 {
				t.Errorf("the program's tracers saw lptrace's exec: %v", ours)
			}
			if r := lptrace(t, "", "stack", pid); r.Code != 0 {
				t.Fatalf("stack: %s", r.Stderr)
			}
			if ours := lptraceCode(c.ask(t, "seen"), false); len(ours) > 0 {
				t.Errorf("the program's tracers saw lptrace's stack: %v", ours)
			}
			before := c.ask(t, "count")
			r := lptrace(t, "", "attach", "--duration", "1s", pid)
			if !strings.Contains(r.Stderr, "detached") {
				t.Fatalf("attach: %s", r.Stderr)
			}
			if got := c.ask(t, "state"); got != fp {
				t.Errorf("right after \"detached\" the program is not as before:\n  before %s\n  after  %s", fp, got)
			}
			// The hook's timer thread starts marked as tracing through
			// ctypes (3.12+, where the program's tool sees every thread);
			// a build without ctypes (musl without libffi) cannot hide it.
			if ours := lptraceCode(c.ask(t, "seen"), false); len(ours) > 0 && (!py.AtLeast(3, 12) || hasModules(py, "ctypes")) {
				t.Errorf("the program's tracers saw lptrace's attach: %v", ours)
			} else if len(ours) > 0 {
				t.Logf("no ctypes: the program's tracers saw lptrace's timer thread (%d functions), as expected here", len(ours))
			}
			if after := c.ask(t, "count"); after == before {
				t.Errorf("the program's tracers stopped working (%s events)", after)
			}
			if !strings.Contains(r.Stdout+r.Stderr, "work") {
				t.Errorf("work() not in the trace: %s", r.Stdout+r.Stderr)
			}
		})
	}
}

// A program bouncing down to 990 and 999 frames under its recursion limit
// of 1000, sleeping at the bottom: lptrace's code runs at that depth.
// exec, stack and attach work (their code gets 100 frames more of limit,
// given back after; before 3.11 the main thread's C stack is grown by the
// thread itself first, where it is parked at its deepest point), the
// program never gets a RecursionError of lptrace's, and its limit is its
// own again afterwards.
func TestRealDeepRecursion(t *testing.T) {
	for _, py := range pythons(t) {
		for _, depth := range []string{"990", "999"} {
			t.Run(py.Name+"/"+depth, func(t *testing.T) {
				tg := startProgram(t, py, "deep_recursion.py", depth)
				tg.waitTicks(t, 2, 10*time.Second)
				pid := strconv.Itoa(tg.PID)
				if r := lptrace(t, "", "exec", pid, "6 * 7"); r.Code != 0 || r.Stdout != "42\n" {
					t.Errorf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				if r := lptrace(t, "", "stack", pid); r.Code != 0 || !strings.Contains(r.Stdout, "in bounce") {
					t.Errorf("stack: status %d, %d lines %s", r.Code, strings.Count(r.Stdout, "\n"), r.Stderr)
				}
				for _, opts := range [][]string{nil, {"-T", "--ret"}} {
					r := lptrace(t, "", append(append([]string{"attach", "--duration", "1s"}, opts...), pid)...)
					if r.Code != 0 || !strings.Contains(r.Stderr, "bounce") {
						t.Errorf("attach %v: status %d, %s", opts, r.Code, lastLines(r.Stderr, 5))
					}
				}
				// lptrace killed at random instants of an exec (the stack
				// probe, the calls): the program goes on as if nothing
				// happened, its limit its own.
				for i := 0; i < 5; i++ {
					cmd := exec.Command(lptraceBin, "exec", pid, "x = 1")
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Duration(rand.Intn(30)) * time.Millisecond)
					cmd.Process.Kill()
					cmd.Wait()
				}
				if r := lptrace(t, "", "exec", pid, "6 * 7"); r.Code != 0 || r.Stdout != "42\n" {
					t.Errorf("exec after the kills: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
				tg.waitTicks(t, 3, 10*time.Second)
				// (A tracing session keeps the headroom while it lives.)
				var limit string
				for _, line := range tg.Other() {
					if strings.HasPrefix(line, "ERROR") {
						t.Errorf("the program printed %q", line)
					}
					if strings.HasPrefix(line, "LIMIT") {
						limit = line
					}
				}
				if limit != "LIMIT 1000" {
					t.Errorf("after the sessions the program's recursion limit is %q", limit)
				}
				if len(tg.Stderr()) > 0 {
					t.Errorf("the program's stderr: %q", tg.Stderr())
				}
			})
		}
	}
}

// lastLines is the end of a long output, for messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A program measured by coverage.py (its C tracer, or sys.monitoring on
// 3.12+ where coverage uses it): its coverage report is the same whether
// lptrace looked at it (exec, stack, attach) or not.
func TestRealCoverage(t *testing.T) {
	for _, py := range pythonsWith(t, "coverage") {
		t.Run(py.Name, func(t *testing.T) {
			report := func(withLptrace bool) string {
				dir := t.TempDir()
				data := filepath.Join(dir, ".coverage")
				tg := startScriptEnv(t, py, []string{"COVERAGE_FILE=" + data}, []string{"-m", "coverage", "run", "--branch", filepath.Join(programsDir, "covered.py")})
				c := dial(t, tg.Port)
				pid := tg.PID
				for i := 0; i < 20; i++ {
					if withLptrace && i%5 == 0 {
						switch i / 5 {
						case 0:
							lptrace(t, "", "exec", strconv.Itoa(pid), "x = 1")
						case 1:
							lptrace(t, "", "stack", strconv.Itoa(pid))
						case 2:
							tr := startAttach(t, pid)
							c.ask(t, "1,2,3")
							tr.waitCall(t, "classify", 5*time.Second)
							tr.Stop(t, syscall.SIGINT)
						}
					}
					if got := c.ask(t, fmt.Sprintf("%d,%d,%d", i, i+1, 15)); !strings.HasPrefix(got, "ok ") {
						t.Fatalf("answer %q", got)
					}
				}
				fmt.Fprintf(c.conn, "quit\n")
				if st := tg.exit(t, 20*time.Second); st.ExitStatus() != 0 {
					t.Fatalf("the program ended with %v: %q", st, tg.Stderr())
				}
				cmd := exec.Command(py.Path, "-m", "coverage", "report", "-m", "--data-file", data)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("coverage report: %v\n%s", err, out)
				}
				return string(out)
			}
			alone, looked := report(false), report(true)
			if alone != looked {
				t.Errorf("the coverage report changed:\n%s\nwith lptrace:\n%s", alone, looked)
			}
			if !strings.Contains(alone, "covered.py") {
				t.Errorf("no report of covered.py:\n%s", alone)
			}
		})
	}
}

// An aiohttp application, idle in the event loop and then under a bounded
// load of requests: exec, stack and attach reach it at once, every request
// gets its answer while it is traced, the view's function is in the trace,
// and the program is as before afterwards.
func TestRealAiohttp(t *testing.T) {
	for _, py := range pythonsWith(t, "aiohttp") {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "aiohttp_app.py")
			client := &http.Client{Timeout: 10 * time.Second}
			get := func(path string) string {
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", tg.Port, path))
				if err != nil {
					return "error: " + err.Error()
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return string(body)
			}
			fp := get("/state")
			before := readOSState(tg.PID)
			pid := strconv.Itoa(tg.PID)
			if r := lptrace(t, "", "exec", "--timeout", "10s", pid, "6 * 7"); r.Code != 0 || r.Stdout != "42\n" {
				t.Fatalf("exec: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			if r := lptrace(t, "", "stack", "--timeout", "10s", pid); r.Code != 0 || !strings.Contains(r.Stdout, "select") {
				t.Fatalf("stack: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
			}
			tr := startAttach(t, tg.PID, "--timeout", "10s")
			// Bounded load: 4 clients, a request each every 10 ms, 1 s.
			var wg sync.WaitGroup
			var bad sync.Map
			for c := 0; c < 4; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 100; i++ {
						name := fmt.Sprintf("c%d-%d", c, i)
						if got := get("/hello/" + name); got != "hello "+name {
							bad.Store(name, got)
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			wg.Wait()
			bad.Range(func(k, v any) bool {
				t.Errorf("request %v while traced: %v", k, v)
				return false
			})
			tr.waitCall(t, "greeting", 5*time.Second)
			tr.Stop(t, syscall.SIGINT)
			checkLeftAsItWas(t, tg.PID, before, fp, func() string { return get("/state") })
		})
	}
}

// Threads that each live a moment, hundreds a second, beside two that never
// block: a session sets every thread's profile function from its own thread
// before 3.12, while threads end and their states are freed (sessions
// wrote into freed states and the program crashed later, in its own code:
// TestLoadCycles on 2.7, whose sessions' own timer threads ended so). Each
// session traces the short threads' and the busy ones' calls, the program
// lives on and keeps starting threads, and the hook leaves.
func TestRealThreadChurn(t *testing.T) {
	// By default the interpreters where the hook sets other threads'
	// profile functions (before 3.12), and the newest.
	cycles, torture := 4, os.Getenv("LPTRACE_TORTURE") != ""
	if torture {
		cycles = 60
	}
	options := [][]string{nil, {"-c"}, {"-T", "--ret"}}
	newestPy := newest(t)
	for _, py := range pythons(t) {
		if !torture && py.AtLeast(3, 12) && py.Name != newestPy.Name {
			continue
		}
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "churn.py")
			tg.waitTicks(t, 2, 10*time.Second)
			pid := strconv.Itoa(tg.PID)
			seen := map[string]bool{}
			for i := 0; i < cycles; i++ {
				out := filepath.Join(t.TempDir(), "trace")
				args := append([]string{"-p", pid, "--duration", "300ms", "-o", out}, options[i%len(options)]...)
				if r := lptrace(t, "", args...); r.Code != 0 {
					t.Fatalf("cycle %d: exit %d: %s", i, r.Code, r.Stderr)
				}
				if !tg.Alive() {
					t.Fatalf("the program died at cycle %d (%q)", i, tg.Stderr())
				}
				trace, _ := os.ReadFile(out)
				for _, f := range []string{"short_job", "busy_step"} {
					if strings.Contains(string(trace), f) {
						seen[f] = true
					}
				}
			}
			for _, f := range []string{"short_job", "busy_step"} {
				if !seen[f] {
					t.Errorf("%s never traced in %d sessions", f, cycles)
				}
			}
			hookGone(t, tg.PID, 2*time.Second)
			before := len(tg.Other())
			tg.waitTicks(t, 12, 10*time.Second)
			other := tg.Other()
			if len(other) <= before || len(other) < 2 || other[len(other)-1] == other[len(other)-2] {
				t.Errorf("the program stopped starting threads: %q", other)
			}
			if len(tg.Stderr()) > 0 {
				t.Errorf("the program's stderr: %q", tg.Stderr())
			}
		})
	}
}
