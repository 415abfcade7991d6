package tests

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tracer is a running `lptrace attach`.
type Tracer struct {
	cmd    *exec.Cmd
	out    string // the trace file
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

type lockedWriter struct{ tr *Tracer }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.tr.mu.Lock()
	defer w.tr.mu.Unlock()
	return w.tr.stderr.Write(p)
}

// startAttach runs lptrace attach PID with the trace going to a file, and
// waits until it says it attached.
func startAttach(t *testing.T, pid int, extra ...string) *Tracer {
	t.Helper()
	tr := &Tracer{out: filepath.Join(t.TempDir(), "trace"), done: make(chan struct{})}
	args := append([]string{"attach", "-o", tr.out}, extra...)
	tr.cmd = exec.Command(lptraceBin, append(args, strconv.Itoa(pid))...)
	tr.cmd.Stderr = lockedWriter{tr}
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { tr.cmd.Wait(); close(tr.done) }()
	t.Cleanup(func() { tr.cmd.Process.Kill(); <-tr.done; ranPIDs.Store(tr.cmd.Process.Pid, time.Now()) })
	deadline := time.Now().Add(scaled(20 * time.Second))
	for !strings.Contains(tr.Stderr(), "attached") {
		select {
		case <-tr.done:
			t.Fatalf("lptrace attach exited: %s", tr.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lptrace attach did not attach in 20s: %s", tr.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tr
}

func (tr *Tracer) Stderr() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stderr.String()
}

// Stop sends sig and waits for lptrace to exit.
func (tr *Tracer) Stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	tr.cmd.Process.Signal(sig)
	select {
	case <-tr.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("lptrace did not exit 10s after %v: %s", sig, tr.Stderr())
	}
	ranPIDs.Store(tr.cmd.Process.Pid, time.Now())
}

// Trace is what lptrace wrote into its output file so far.
//
// A busy program's trace grows by hundreds of MB a second (four threads
// spinning, traced by the machine code): read whole, and again at each
// look for a function, it took the tests' memory past 24 GB. Past 96 MiB
// only its first 64 MiB and its last 16 MiB are read, cut at lines: what
// the tests look for is in those (the first calls of each thread, the
// last words).
func (tr *Tracer) Trace() string {
	return readTrace(tr.out)
}

func readTrace(path string) string {
	const whole, head, tail = 96 << 20, 64 << 20, 16 << 20
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	size := st.Size()
	if size <= whole {
		data, _ := io.ReadAll(f)
		return string(data)
	}
	first := make([]byte, head)
	n, _ := f.ReadAt(first, 0)
	first = first[:n]
	if i := bytes.LastIndexByte(first, '\n'); i >= 0 {
		first = first[:i+1]
	}
	last := make([]byte, tail)
	n, _ = f.ReadAt(last, size-tail)
	last = last[:n]
	if i := bytes.IndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	return string(first) + string(last)
}

var traceLine = regexp.MustCompile(`^(?:\[tid (\d+)(?: [^\]]*)?\] )?(\S+) \((.*):(\d+)\)$`)

// calls counts, per function name, the distinct threads that called it.
func calls(trace string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(trace, "\n") {
		m := traceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if out[m[2]] == nil {
			out[m[2]] = map[string]bool{}
		}
		out[m[2]][m[1]] = true
	}
	return out
}

// hookGone checks from inside the target that no lptrace hook is left.
func hookGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	check := "import sys; m = getattr(sys, 'monitoring', None); hasattr(sys, '__lptrace__') or bool(m and [i for i in range(6) if m.get_tool(i) == 'lptrace'])"
	within = scaled(within)
	deadline := time.Now().Add(within)
	for {
		r := lptrace(t, "", "exec", strconv.Itoa(pid), check)
		if r.Code == 0 && r.Stdout == "False\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hook is still installed %v later: exec says %q %q", within, r.Stdout, r.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The original README's scenario, on every Python: trace an HTTP server, make
// a request, see the handler's functions, Ctrl-C, and the server still
// answers, untraced.
func TestAttachHTTPServer(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "http")
			url := fmt.Sprintf("http://127.0.0.1:%d/", tg.Port)
			tr := startAttach(t, tg.PID)
			get(t, url)
			// The handler's calls reach the trace (the last one called
			// shows last; all are checked below).
			eventually(5*time.Second, func() bool { return strings.Contains(tr.Trace(), "send_head") })
			tr.Stop(t, syscall.SIGINT)
			if !strings.Contains(tr.Stderr(), fmt.Sprintf("process %d detached", tg.PID)) {
				t.Errorf("no detach message: %q", tr.Stderr())
			}
			c := calls(tr.Trace())
			for _, fn := range []string{"handle_one_request", "do_GET", "send_head"} {
				found := false
				for name := range c {
					if name == fn || strings.HasSuffix(name, "."+fn) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s not in the trace (%d functions seen)", fn, len(c))
				}
			}
			get(t, url)
			hookGone(t, tg.PID, 2*time.Second)
			if !tg.Alive() {
				t.Fatal("target died")
			}
			if l := leftovers(); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

func get(t *testing.T, url string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

// Threads that exist before attach, of every kind (sleeping, computing,
// waiting on a queue), and one started after: all traced.
func TestAttachAllThreads(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "threads")
			tr := startAttach(t, tg.PID)
			time.Sleep(scaled(500 * time.Millisecond))
			r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import threading; t = threading.Thread(target=late_worker); t.daemon = True; t.start()")
			if r.Code != 0 {
				t.Fatalf("starting a thread: %s", r.Stderr)
			}
			time.Sleep(scaled(1500 * time.Millisecond))
			tr.Stop(t, syscall.SIGTERM)
			c := calls(tr.Trace())
			want := map[string]int{"heartbeat_step": 1, "sleeper_tick": 3, "fib": 2, "waiter_tick": 2, "late_tick": 1}
			for fn, n := range want {
				if len(c[fn]) < n {
					t.Errorf("%s called from %d threads in the trace, want %d (stderr %q)", fn, len(c[fn]), n, tr.Stderr())
				}
			}
			hookGone(t, tg.PID, 2*time.Second)
			tg.waitTicks(t, 3, 5*time.Second)
		})
	}
}

// Each event is shown in the thread that made it, while threads take turns
// every 20 us in the middle of their loops (the hook caches the latest
// function and thread): a function that only thread wK calls shows in one
// thread only, and each thread shows 50 calls of the shared function per
// call of its own one.
func TestAttachThreadAttribution(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "owners")
			tr := startAttach(t, tg.PID)
			// Before 3.12 lptrace hooks a busy thread when it catches it
			// asleep: wait for all four, then trace them all for a second.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if c := calls(tr.Trace()); c["owned_by_w0"] != nil && c["owned_by_w1"] != nil && c["owned_by_w2"] != nil && c["owned_by_w3"] != nil {
					break
				}
			}
			time.Sleep(time.Second)
			tr.Stop(t, syscall.SIGINT)
			shared := map[string]int{}
			owned := map[string]map[string]int{} // tid -> function -> calls
			for _, line := range strings.Split(tr.Trace(), "\n") {
				m := traceLine.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				switch {
				case m[2] == "shared_call":
					shared[m[1]]++
				case strings.HasPrefix(m[2], "owned_by_"):
					if owned[m[1]] == nil {
						owned[m[1]] = map[string]int{}
					}
					owned[m[1]][m[2]]++
				}
			}
			owners := map[string]string{}
			for tid, fns := range owned {
				if len(fns) != 1 {
					t.Errorf("thread %s shows the functions of several threads: %v", tid, fns)
				}
				for fn, n := range fns {
					if other, ok := owners[fn]; ok {
						t.Errorf("%s shows in threads %s and %s", fn, other, tid)
					}
					owners[fn] = tid
					if d := shared[tid] - 50*n; !strings.Contains(tr.Stderr(), "dropped") && (d < -100 || d > 100) {
						t.Errorf("thread %s: %d calls of shared_call for %d of %s, want 50 per call", tid, shared[tid], n, fn)
					}
				}
			}
			if len(owners) != 4 {
				t.Errorf("the trace shows the own functions of %d threads, want 4: %v (stderr %q)", len(owners), owned, tr.Stderr())
			}
			hookGone(t, tg.PID, 2*time.Second)
		})
	}
}

// After detach the program runs at its untraced speed (a ratio in one run,
// asserted loosely: tests are not benchmarks).
func TestAttachDetachRestoresSpeed(t *testing.T) {
	py := newest(t)
	tg := startTarget(t, py, "rate")
	before := rates(tg, 5)
	tr := startAttach(t, tg.PID)
	time.Sleep(time.Second)
	tr.Stop(t, syscall.SIGINT)
	hookGone(t, tg.PID, 2*time.Second)
	after := rates(tg, 5)
	if after < before*7/10 {
		t.Errorf("after detach: %d calls/s, before attach: %d", after, before)
	}
	t.Logf("calls/s before %d, after detach %d", before, after)
}

// rates waits for n new "rate" lines and returns their median.
func rates(tg *Target, n int) int {
	start := len(tg.Other())
	deadline := time.Now().Add(10 * time.Second)
	for len(tg.Other()) < start+n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var v []int
	for _, line := range tg.Other()[start:] {
		if x, err := strconv.Atoi(strings.TrimPrefix(line, "rate ")); err == nil {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	for i := range v {
		for j := i + 1; j < len(v); j++ {
			if v[j] < v[i] {
				v[i], v[j] = v[j], v[i]
			}
		}
	}
	return v[len(v)/2]
}

// The hook shortens the program's switch interval until its first events
// are out (the timer thread gets the GIL sooner), and must give back the
// program's own value: while traced, once they are, and after the detach.
// Busy (first events at once) and idle (none: the timer thread's first
// turn gives it back). 0.0037 s: kept as 3700 us, read back as 0.0036999...,
// which set again as such would make 3699.
func TestAttachSwitchIntervalKept(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 2) {
			continue // 2.7 has a check interval, which the hook leaves alone
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []string{"cpu", "sleep"} {
				tg := startTarget(t, py, mode)
				pid := strconv.Itoa(tg.PID)
				if r := lptrace(t, "", "exec", pid, "import sys; sys.setswitchinterval(0.0037)"); r.Code != 0 {
					t.Fatalf("%s: exec: %s", mode, r.Stderr)
				}
				interval := func(when string) {
					t.Helper()
					r := lptrace(t, "", "exec", pid, "import sys; print(int(round(sys.getswitchinterval() * 1e6)))")
					if r.Stdout != "3700\n" {
						t.Errorf("%s, %s: switch interval %q µs (%s), want the program's 3700 µs", mode, when, r.Stdout, r.Stderr)
					}
				}
				tr := startAttach(t, tg.PID)
				if mode == "cpu" {
					for deadline := time.Now().Add(5 * time.Second); calls(tr.Trace())["fib"] == nil && time.Now().Before(deadline); {
						time.Sleep(20 * time.Millisecond)
					}
				}
				time.Sleep(300 * time.Millisecond)
				interval("while traced")
				tr.Stop(t, syscall.SIGINT)
				hookGone(t, tg.PID, 2*time.Second)
				interval("after detach")
				tg.waitTicks(t, 3, 5*time.Second)
			}
		})
	}
}

// kill -9 of lptrace: the target lives on, and its hook removes itself within
// a second, even when the program is idle; with SIGPIPE at SIG_DFL too.
func TestAttachTracerKilled(t *testing.T) {
	for _, py := range pythons(t) {
		for _, mode := range []string{"sleep", "sigpipe", "threads"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				tg := startTarget(t, py, mode)
				nthreads := threadCount(tg.PID)
				if mode == "sigpipe" {
					// A normal detach first.
					tr := startAttach(t, tg.PID)
					time.Sleep(200 * time.Millisecond)
					tr.Stop(t, syscall.SIGINT)
					hookGone(t, tg.PID, 2*time.Second)
				}
				tr := startAttach(t, tg.PID)
				time.Sleep(200 * time.Millisecond)
				tr.Stop(t, syscall.SIGKILL)
				time.Sleep(time.Second)
				if !tg.Alive() {
					t.Fatal("target died after lptrace was killed")
				}
				hookGone(t, tg.PID, time.Second)
				if n := threadCount(tg.PID); n != nthreads {
					t.Errorf("%d threads after, %d before", n, nthreads)
				}
				tg.waitTicks(t, 3, 5*time.Second)
			})
		}
	}
}

func threadCount(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(ents)
}

// A program that catches KeyboardInterrupt gets every Ctrl-C while traced,
// and the hook stays installed.
func TestAttachKeyboardInterrupt(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "sigint")
			tr := startAttach(t, tg.PID)
			caught := func() int { return tg.said("caught") }
			// Each one caught before the next is sent (two pending at
			// once would be one).
			for i := 1; i <= 5; i++ {
				syscall.Kill(tg.PID, syscall.SIGINT)
				if !eventually(5*time.Second, func() bool { return caught() >= i }) {
					break
				}
			}
			if n := caught(); n != 5 {
				t.Errorf("the program caught %d of 5 Ctrl-C", n)
			}
			r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import sys; hasattr(sys, '__lptrace__')")
			if r.Stdout != "True\n" {
				t.Errorf("hook gone after the interrupts: %q %q", r.Stdout, r.Stderr)
			}
			before := strings.Count(tr.Trace(), "heartbeat_step")
			// 2.7 may need a re-hook round (600 ms).
			eventually(5*time.Second, func() bool { return strings.Count(tr.Trace(), "heartbeat_step") > before })
			tr.Stop(t, syscall.SIGINT)
			if after := strings.Count(tr.Trace(), "heartbeat_step"); after <= before {
				t.Errorf("no events after the interrupts (%d, then %d)", before, after)
			}
			hookGone(t, tg.PID, 2*time.Second)
		})
	}
}

// A child forked while traced neither shows in the trace nor keeps the pipe.
func TestAttachFork(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "fork")
			tr := startAttach(t, tg.PID)
			time.Sleep(300 * time.Millisecond)
			syscall.Kill(tg.PID, syscall.SIGUSR2)
			time.Sleep(1500 * time.Millisecond)
			tr.Stop(t, syscall.SIGINT)
			trace := tr.Trace()
			if strings.Contains(trace, "child_work") {
				t.Error("the forked child's calls are in the trace")
			}
			if !strings.Contains(trace, "heartbeat_step") {
				t.Error("the parent's calls are missing")
			}
			if !tg.Alive() {
				t.Fatal("target died")
			}
		})
	}
}

// checkOwnerRounds checks an owners trace call by call: in each worker
// thread, 50 shared_call then its owned_by_wK, over and over, from its first
// owned_by_wK on (nothing lost, nothing out of order, also where the
// machine-code callback took over from the Python one).
func checkOwnerRounds(t *testing.T, opts []string, trace, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "dropped") {
		// Events lost to a full ring (lptrace starved of CPU for long on a
		// loaded machine): rounds across the loss cannot be checked.
		t.Logf("%v: events were dropped, the rounds are not checked: %s", opts, lastLines(stderr, 2))
		return
	}
	line := regexp.MustCompile(`^\[tid (\d+)(?: [^\]]*)?\] (shared_call|owned_by_w\d) `)
	shared := map[string]int{} // per thread since its last owned_by_wK; -1 before the first
	rounds := 0
	for _, l := range strings.Split(trace, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, seen := shared[m[1]]
		if !seen {
			n = -1
		}
		switch {
		case m[2] == "shared_call" && n >= 0:
			shared[m[1]] = n + 1
		case m[2] == "shared_call":
			shared[m[1]] = -1
		default:
			if n >= 0 && n != 50 {
				t.Errorf("%v: thread %s made %d shared_call between two owned_by calls, want 50", opts, m[1], n)
				return
			}
			if n >= 0 {
				rounds++
			}
			shared[m[1]] = 0
		}
	}
	if rounds < 4 {
		t.Errorf("%v: only %d complete rounds in the trace", opts, rounds)
	}
}

// Two sessions that overlap for longer than lptrace's periodic re-hook of
// the main thread (before 3.12): each sees every call, and the program sees
// nothing. Each hook used to find the other's profile function in place
// and call it on, so that the two called each other until the recursion
// limit, which the program got (or a crash).
func TestAttachOverlapping(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "calls")
			a := startAttach(t, tg.PID)
			time.Sleep(700 * time.Millisecond)
			b := startAttach(t, tg.PID)
			time.Sleep(2 * time.Second)
			b.Stop(t, syscall.SIGINT)
			time.Sleep(300 * time.Millisecond)
			a.Stop(t, syscall.SIGINT)
			for name, tr := range map[string]*Tracer{"first": a, "second": b} {
				if c := calls(tr.Trace()); c["app_outer"] == nil || c["app_inner"] == nil {
					t.Errorf("%s session: app_outer or app_inner missing (stderr %q)", name, tr.Stderr())
				}
			}
			if e := tg.Stderr(); len(e) > 0 {
				t.Errorf("the program's stderr got %d lines: %q", len(e), e[:min(len(e), 5)])
			}
			tg.checkUntouched(t)
		})
	}
}

// A real attach loads the hook precompiled whenever lptrace carries code
// for the interpreter's version and its bytecode magic number is that
// code's, by either route (a sleeping target: a direct call; a computing
// one: a pending call). The fallback to the source would still work, only
// slower: no other test would notice it.
func TestAttachPrecompiled(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(py.Path, "-c", `import sys
try:
    import importlib.util as u
    m = u.MAGIC_NUMBER
except ImportError:
    import imp
    m = imp.get_magic()
sys.stdout.write('%d.%d %s' % (sys.version_info[0], sys.version_info[1], ''.join('%02x' % c for c in bytearray(m))))`).Output()
			if err != nil {
				t.Fatal(err)
			}
			version, magic, _ := strings.Cut(string(out), " ")
			want := "hook's code compiled"
			if data, err := os.ReadFile(filepath.Join("..", "hook", "precompiled", version+".bin")); err == nil &&
				strings.Contains(string(data[:min(len(data), 200)]), "\nmagic "+magic+"\n") {
				want = "hook's code precompiled"
			}
			for _, mode := range []string{"sleep", "cpu"} {
				tg := startTarget(t, py, mode)
				cmd := exec.Command(lptraceBin, "attach", "-o", os.DevNull, "--duration", "300ms", strconv.Itoa(tg.PID))
				cmd.Env = append(os.Environ(), "LPTRACE_TIMING=1")
				stderr, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(stderr), want) {
					t.Errorf("%s target: want %q (%v): %s", mode, want, err, stderr)
				}
				tg.waitTicks(t, 2, 5*time.Second)
			}
		})
	}
}
