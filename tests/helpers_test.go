// Package tests holds lptrace's integration tests: they build the lptrace
// binary and run it against real Python processes of every interpreter
// installed on the machine. Nothing is mocked.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
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

var lptraceBin string

func TestMain(m *testing.M) {
	// LPTRACE_BIN: a prebuilt lptrace (another architecture's, built on
	// the host; or an older one, to see a test fail without a fix).
	if bin := os.Getenv("LPTRACE_BIN"); bin != "" {
		lptraceBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "lptrace-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // the unprivileged-user tests run it too
	lptraceBin = filepath.Join(dir, "lptrace")
	build := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", lptraceBin, "../cmd/lptrace")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lptrace: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// timeScale is $LPTRACE_TIME_SCALE: how much slower than this machine the
// tests run (the arm64 tests in qemu's emulated machine: 15). Timing limits
// are multiplied by it, never the assertions themselves.
var timeScale = func() float64 {
	f, err := strconv.ParseFloat(os.Getenv("LPTRACE_TIME_SCALE"), 64)
	if err != nil || f < 1 {
		return 1
	}
	return f
}()

// scaled is a timing limit of this machine, on the one the tests run on.
func scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * timeScale) }

// Python is one installed interpreter.
type Python struct {
	Path string
	Name string // e.g. "3.12" or "3.11-debian"
}

// interpreterName: python3.13, or python3.13t (free-threaded).
var interpreterName = regexp.MustCompile(`^python(\d\.\d+t?)$`)

// pythons lists the interpreters to test: $LPTRACE_PYTHONS (colon-separated)
// if set, else every one found on the machine. No interpreter at all is a
// failure, not a skip: the tests would prove nothing.
func pythons(t testing.TB) []Python {
	t.Helper()
	var paths []string
	if env := os.Getenv("LPTRACE_PYTHONS"); env != "" {
		paths = strings.Split(env, ":")
	} else {
		paths = discoverPythons()
	}
	var out []Python
	seen := map[string]bool{}
	for _, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		m := interpreterName.FindStringSubmatch(filepath.Base(p))
		if m == nil {
			continue
		}
		name := m[1]
		switch {
		case strings.HasPrefix(p, "/usr/bin/"):
			name += "-debian"
		case strings.Contains(p, "lptrace-pythons"):
			name += "-sid"
		case strings.Contains(p, "/musl/"): // more-pythons.sh's musl build
			name += "-musl"
		}
		out = append(out, Python{Path: p, Name: name})
	}
	if len(out) == 0 {
		t.Fatal("no Python interpreter found (set LPTRACE_PYTHONS or install one)")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// freeThreadedPythons lists the free-threaded interpreters of pythons()
// (python3.13t).
func freeThreadedPythons(t testing.TB) []Python {
	var out []Python
	for _, py := range pythons(t) {
		if py.FreeThreaded() {
			out = append(out, py)
		}
	}
	return out
}

func discoverPythons() []string {
	var globs []string
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		root = filepath.Join(os.Getenv("HOME"), ".pyenv")
	}
	globs = append(globs, filepath.Join(root, "versions", "*", "bin", "python*"), "/usr/bin/python*", "/usr/local/bin/python*")
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache")
	}
	globs = append(globs, filepath.Join(cache, "lptrace-pythons", "root", "usr", "bin", "python*"),
		filepath.Join(cache, "lptrace-more-pythons", "*", "bin", "python*"))
	var out []string
	for _, g := range globs {
		ms, _ := filepath.Glob(g)
		for _, m := range ms {
			if interpreterName.MatchString(filepath.Base(m)) {
				out = append(out, m)
			}
		}
	}
	return out
}

// Target is a running tests/targets/target.py.
type Target struct {
	PID  int
	Port int
	cmd  *exec.Cmd

	mu     sync.Mutex
	waited sync.Once
	status syscall.WaitStatus
	ticks  []time.Time
	other  []string // lines other than ticks on the target's stdout
	stderr []string
	done   chan struct{}
}

var targetScript, _ = filepath.Abs("targets/target.py")

// startTarget runs target.py MODE with py and waits until it is ready.
func startTarget(t *testing.T, py Python, mode string, wrap ...string) *Target {
	t.Helper()
	tg := startScript(t, py, []string{targetScript, mode}, wrap...)
	if mode != "gilheld" && mode != "rate" {
		tg.waitTicks(t, 3, 5*time.Second)
	}
	// The pipe of a target running as another user is written by that user:
	// wrap may be sudo-like, so the PID of interest is the python's.
	if len(wrap) > 0 {
		tg.PID = childPID(t, tg.PID)
	}
	return tg
}

// startScript runs py -u SCRIPT ARGS... (script and its arguments in
// argv) and waits for its "READY <port>" line.
func startScript(t *testing.T, py Python, argv []string, wrap ...string) *Target {
	t.Helper()
	return startScriptEnv(t, py, nil, argv, wrap...)
}

// startScriptEnv is startScript with more environment variables.
func startScriptEnv(t *testing.T, py Python, env []string, argv []string, wrap ...string) *Target {
	t.Helper()
	args := append(append(append([]string(nil), wrap...), py.Path, "-u"), argv...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	tg := &Target{}
	cmd.Stderr = &prefixWriter{t: t, prefix: "target stderr: ", sink: func(line string) {
		tg.mu.Lock()
		tg.stderr = append(tg.stderr, line)
		tg.mu.Unlock()
	}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg.PID, tg.cmd, tg.done = cmd.Process.Pid, cmd, make(chan struct{})
	pgid := cmd.Process.Pid // the process group of the target and any wrapper
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL)
		tg.reap()
	})
	ready := make(chan int, 1)
	go func() {
		defer close(tg.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "tick "):
				tg.mu.Lock()
				tg.ticks = append(tg.ticks, time.Now())
				tg.mu.Unlock()
			case strings.HasPrefix(line, "READY "):
				port, _ := strconv.Atoi(strings.TrimPrefix(line, "READY "))
				ready <- port
			default:
				tg.mu.Lock()
				tg.other = append(tg.other, line)
				tg.mu.Unlock()
			}
		}
	}()
	select {
	case tg.Port = <-ready:
	case <-tg.done:
		t.Fatalf("%s %v exited before it was ready", py.Name, argv)
	case <-time.After(scaled(20 * time.Second)):
		t.Fatalf("%s %v not ready after %v", py.Name, argv, scaled(20*time.Second))
	}
	return tg
}

// childPID follows a wrapper that execs (setpriv) or forks (su) to the
// Python process.
func childPID(t *testing.T, pid int) int {
	for i := 0; i < 50; i++ {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if strings.Contains(filepath.Base(exe), "python") {
			return pid
		}
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(data)); len(f) > 0 {
			pid, _ = strconv.Atoi(f[0])
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no python process under %d", pid)
	return 0
}

// reap waits for the target's end (its output first: exec.Cmd wants the
// reads from its pipe done before Wait) and keeps its status.
func (tg *Target) reap() {
	tg.waited.Do(func() {
		<-tg.done
		tg.cmd.Wait()
		if tg.cmd.ProcessState != nil {
			tg.status = tg.cmd.ProcessState.Sys().(syscall.WaitStatus)
		}
	})
}

// exit waits until the target ends, at most within, and returns how.
func (tg *Target) exit(t *testing.T, within time.Duration) syscall.WaitStatus {
	t.Helper()
	ended := make(chan struct{})
	go func() { tg.reap(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(within):
		t.Fatalf("the program did not end within %v", within)
	}
	return tg.status
}

func (tg *Target) tickCount() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.ticks)
}

// waitTicks waits for n more heartbeat lines.
func (tg *Target) waitTicks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	start := tg.tickCount()
	timeout = scaled(timeout)
	deadline := time.Now().Add(timeout)
	for tg.tickCount() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("target %d printed %d heartbeat lines in %v, want %d (alive: %v)", tg.PID, tg.tickCount()-start, timeout, n, tg.Alive())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually looks at cond every 10 ms until it holds or within has
// passed, and tells whether it held: the caller says what failed.
func eventually(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// maxGap is the longest pause between heartbeat lines since t0, including
// the pause from the last line to now.
func (tg *Target) maxGap(t0 time.Time) time.Duration {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var gap time.Duration
	prev := t0
	for _, tk := range tg.ticks {
		if tk.Before(t0) {
			continue
		}
		if d := tk.Sub(prev); d > gap {
			gap = d
		}
		prev = tk
	}
	if d := time.Since(prev); d > gap {
		gap = d
	}
	return gap
}

// checkUntouched checks that the target is alive, printed nothing but its
// heartbeat, and that finished lptrace runs left nothing in /tmp.
func (tg *Target) checkUntouched(t *testing.T) {
	t.Helper()
	if !tg.Alive() {
		t.Fatal("target died")
	}
	if other := tg.Other(); len(other) > 0 {
		t.Errorf("the target's own stdout got %q", other)
	}
	if l := leftovers(); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

// Other returns what the target printed besides its heartbeat.
// Stderr returns the lines the target wrote on its stderr so far.
func (tg *Target) Stderr() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.stderr...)
}

func (tg *Target) Other() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.other...)
}

// said is how many times the target printed line (besides its ticks).
func (tg *Target) said(line string) int {
	n := 0
	for _, l := range tg.Other() {
		if l == line {
			n++
		}
	}
	return n
}

// Alive reports whether the target process still runs (not a zombie).
func (tg *Target) Alive() bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tg.PID))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && i+2 < len(data) && data[i+2] != 'Z'
}

// Result is what one lptrace run did.
type Result struct {
	Stdout, Stderr string
	Code           int
	Elapsed        time.Duration
	PID            int // lptrace's
}

// lptrace runs the binary with args and a 60 s safety timeout.
func lptrace(t *testing.T, stdin string, args ...string) Result {
	t.Helper()
	return lptraceAs(t, nil, stdin, args...)
}

func lptraceAs(t *testing.T, wrap []string, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scaled(60*time.Second))
	defer cancel()
	full := append(append(append([]string(nil), wrap...), lptraceBin), args...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var so, se cappedBuffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.Stdin = strings.NewReader(stdin)
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: so.String(), Stderr: se.String(), Elapsed: time.Since(start), PID: cmd.Process.Pid}
	ranPIDs.Store(r.PID, time.Now())
	if ctx.Err() != nil {
		t.Fatalf("lptrace %v hung (killed after 60s); stderr: %s", args, r.Stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("lptrace %v: %v", args, err)
	}
	if strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "panic:") {
		t.Fatalf("lptrace %v crashed:\n%s", args, r.Stderr)
	}
	return r
}

// cappedBuffer keeps the first 32 MiB written to it and the last 4 MiB: a
// trace of busy threads makes hundreds of megabytes a second, and the tests
// look at its beginning (the functions) and its end (how lptrace ended).
type cappedBuffer struct {
	head, tail []byte
	cut        int
}

const capHead, capTail = 32 << 20, 4 << 20

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := capHead - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - capTail; over > capTail {
		b.cut += over
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
	return n, nil
}

func (b *cappedBuffer) String() string {
	if b.cut == 0 {
		return string(b.head) + string(b.tail)
	}
	return fmt.Sprintf("%s\n[%d bytes not kept by the test]\n%s", b.head, b.cut, b.tail)
}

// ranPIDs holds the PIDs of the lptrace runs that have finished, with
// when each one ended.
var ranPIDs sync.Map

// leftovers lists what finished lptrace runs left in the temporary
// directories. PIDs wrap around (32768 here) during a run of the suite, so
// a directory counts only if it was last changed while the run with that
// PID may have been alive (at most a minute before its end, and not after
// it): the leftover of a killed lptrace that happened to get the same PID
// at another time is another test's business.
func leftovers() []string {
	var out []string
	for _, d := range []string{"/tmp", "/dev/shm", "/var/tmp"} {
		ms, _ := filepath.Glob(filepath.Join(d, "lptrace-[0-9]*"))
		for _, m := range ms {
			var pid int
			fmt.Sscanf(filepath.Base(m), "lptrace-%d-", &pid)
			v, done := ranPIDs.Load(pid)
			if !done {
				continue
			}
			var st syscall.Stat_t
			if syscall.Stat(m, &st) != nil {
				continue // gone meanwhile
			}
			changed := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
			end := v.(time.Time)
			if changed.Before(end.Add(-70*time.Second)) || changed.After(end.Add(time.Second)) {
				continue
			}
			// What is in it, and how old, tells who left it.
			desc := fmt.Sprintf("%s (changed %v before the run with PID %d ended;", m, end.Sub(changed).Round(time.Millisecond), pid)
			ents, _ := os.ReadDir(m)
			for _, e := range ents {
				desc += " " + e.Name()
			}
			out = append(out, desc+")")
		}
	}
	return out
}

type prefixWriter struct {
	t      *testing.T
	prefix string
	sink   func(string) // also gets each line, if set
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + line)
		if w.sink != nil {
			w.sink(line)
		}
	}
	return len(p), nil
}

// FreeThreaded tells a free-threaded build (3.13t: no GIL).
func (p Python) FreeThreaded() bool { return strings.HasSuffix(strings.SplitN(p.Name, "-", 2)[0], "t") }

// AtLeast tells whether the interpreter is version major.minor or newer.
func (p Python) AtLeast(major, minor int) bool {
	v := strings.SplitN(strings.TrimSuffix(strings.SplitN(p.Name, "-", 2)[0], "t"), ".", 2)
	ma, _ := strconv.Atoi(v[0])
	mi := 0
	if len(v) > 1 {
		mi, _ = strconv.Atoi(v[1])
	}
	return ma > major || ma == major && mi >= minor
}
