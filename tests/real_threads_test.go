package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
			// Its four threads compute at once beside the heartbeat, and
			// the dump stops the world (sys._current_frames), which waits
			// for each of them to be scheduled: on this 2-core machine
			// under the whole suite's load the heartbeat paused 0.6 s
			// without lptrace and 3.3 s with (measured); the payloads that
			// hung it (ctypes' import, fixed) paused it 6.5 and 15 s.
			if gap := tg.maxGap(t0); gap > 5*time.Second {
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
			deadline := time.Now().Add(scaled(10 * time.Second))
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
