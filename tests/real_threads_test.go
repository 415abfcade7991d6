package tests

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
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
			// (A free-threaded build: lptrace imports no ctypes there.)
			withCtypes := hasModules(py, "ctypes") && !py.FreeThreaded()
			for i := 0; i < 10 && !withCtypes; i++ {
				// Only ctypes reads them safely there: refused in one line.
				r := lptrace(t, "", "stack", pid)
				if r.Code == 0 || !strings.Contains(r.Stderr, "cannot read the stacks: the stacks of a program that runs subinterpreters can only be read with ctypes, which this Python lacks") || strings.Count(r.Stderr, "\n") != 1 {
					t.Fatalf("stack without ctypes: status %d, %q %s", r.Code, r.Stdout, r.Stderr)
				}
			}
			for i := 0; i < 10 && withCtypes; i++ {
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

// Free-threaded CPython (3.13t, --disable-gil), where the program's
// threads run Python at the same time (and the hook's callbacks with
// them): four threads spinning on a tiny function. A trace shows all four,
// -c counts them, -T times them, record writes its file, launch mode
// traces; sessions that lptrace's SIGKILL or Ctrl-C ends at any moment
// (mid-injection, mid-trace) leave a program that lives on at its pace,
// with nothing of lptrace left in it (sessions of the hook made for the GIL
// crashed it in 2 of 7). exec, stack and pdb work there; exec and stack
// in a busy program, a blocked one and one computing in its main thread.
func TestFreeThreaded(t *testing.T) {
	fts := freeThreadedPythons(t)
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
			tr := startAttach(t, tg.PID, "-T")
			timed := regexp.MustCompile(`spin_step .*<\d+\.\d{6}>`)
			stopWithSpinners(t, tr, timed.MatchString)
			if !timed.MatchString(tr.Trace()) {
				t.Errorf("-T timed no spin_step: %.2000s", tr.Trace())
			}
			if strings.Contains(tr.Stderr(), "not shown") {
				t.Errorf("events lost: %s", tr.Stderr())
			}
			r := lptrace(t, "", "attach", "--duration", "1s", "-c", pid)
			if !regexp.MustCompile(`\d+ +spin_step`).MatchString(r.Stdout+r.Stderr) || r.Code != 0 {
				t.Errorf("-c counted no spin_step: status %d %s", r.Code, r.Stdout+r.Stderr)
			}
			recording := filepath.Join(t.TempDir(), "r.svg")
			if r := lptrace(t, "", "record", "--duration", "1s", "-o", recording, pid); r.Code != 0 || !strings.Contains(r.Stderr, "in 4 threads") {
				t.Errorf("record: status %d %s", r.Code, r.Stderr)
			}
			if b, err := os.ReadFile(recording); err != nil || !strings.Contains(string(b), "spin_step") {
				t.Errorf("the flame graph shows no spin_step: %v", err)
			}
			sessionsKilledAnywhere(t, tg, 6)
			if r := lptrace(t, "", "--", py.Path, "-c", "import json; print(json.dumps([1]))"); r.Code != 0 || !strings.Contains(r.Stdout, "[1]") || !strings.Contains(r.Stderr, "dumps") {
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
			// pdb's first start makes its classes, each stopping every
			// thread: seconds beside these four, while the main thread,
			// pdb's, waits (9.6 s measured alone). The program goes on.
			if r := lptrace(t, "p 6 * 7\nc\n", "pdb", "--timeout", "60s", pid); r.Code != 0 || !strings.Contains(r.Stdout, "42") || !strings.Contains(r.Stderr, "session ended") {
				t.Errorf("pdb: status %d, %q %q", r.Code, r.Stdout, r.Stderr)
			}
			tg.waitTicks(t, 2, 20*time.Second)
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
			stopWithSpinners(t, tr, nil)
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

// sessionsKilledAnywhere runs n trace sessions of tg, each ended by SIGKILL
// or Ctrl-C at a random instant (mid-injection included), with options
// that take each of the hook's paths; a Ctrl-C'd lptrace must exit by
// itself. tg must live on, and lose the hook each time.
func sessionsKilledAnywhere(t *testing.T, tg *Target, n int) {
	t.Helper()
	options := [][]string{nil, {"-c"}, {"-T", "--args", "--ret"}, {"-k"}}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < n; i++ {
		args := append(append([]string{"attach", "-o", os.DevNull}, options[i%len(options)]...), strconv.Itoa(tg.PID))
		cmd := exec.Command(lptraceBin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan struct{})
		go func() { cmd.Wait(); close(waited) }()
		time.Sleep(time.Duration(rng.Intn(800)) * time.Millisecond)
		sig := os.Signal(os.Kill)
		if i%2 == 1 {
			sig = os.Interrupt
		}
		cmd.Process.Signal(sig)
		select {
		case <-waited:
		case <-time.After(scaled(10 * time.Second)):
			cmd.Process.Kill()
			<-waited
			t.Errorf("%v: lptrace did not exit within 10 s of its Ctrl-C: %s", args, stderr.String())
		}
		if strings.Contains(stderr.String(), "goroutine ") {
			t.Fatalf("lptrace crashed: %s", stderr.String())
		}
		if !tg.Alive() {
			t.Fatalf("the program died after session %d (%v, %v): %q", i, args, sig, tg.Stderr())
		}
		hookGone(t, tg.PID, 2*time.Second)
	}
}

// stopWithSpinners ends tr, a trace of spinners.py, once it shows
// spin_step in the four threads that call it and satisfies also (if not
// nil), or after 10 s, and checks that it showed the four.
func stopWithSpinners(t *testing.T, tr *Tracer, also func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(scaled(10 * time.Second))
	for (len(calls(tr.Trace())["spin_step"]) < 4 || also != nil && !also(tr.Trace())) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	tr.Stop(t, syscall.SIGINT)
	if got := calls(tr.Trace())["spin_step"]; len(got) != 4 {
		t.Errorf("spin_step traced in %d threads, want 4 (%s)", len(got), tr.Stderr())
	}
}
