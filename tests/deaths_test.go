package tests

// Programs that end abruptly, and short-lived processes: whatever ends a
// traced process, every event it recorded before reaches the output, and
// lptrace says how it ended, in strace's words. Or, where events are lost
// after all, lptrace says how many: a loss nobody reports looks like a
// program that did not make the calls.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// launchRun is one `lptrace [options] -o FILE -- PROGRAM` run.
type launchRun struct {
	stdout, stderr, trace string
	status                syscall.WaitStatus // lptrace's own
}

// launchTraced runs lptrace with opts, the trace going to a file, on argv
// (launch mode), and returns how lptrace ended. The test's own runner, not
// lptrace(): lptrace dies of its program's signal, which Result's exit code
// does not tell.
func launchTraced(t *testing.T, opts []string, argv ...string) launchRun {
	t.Helper()
	out := filepath.Join(t.TempDir(), "trace")
	args := append(append(append([]string(nil), opts...), "-o", out, "--"), argv...)
	cmd := exec.Command(lptraceBin, args...)
	var so, se bytes.Buffer // read once Wait has returned
	cmd.Stdout, cmd.Stderr = &so, &se
	// Its own process group, the program's too (launch mode keeps the
	// program in lptrace's group): a test that gives up kills both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		t.Fatalf("lptrace %v did not end within 30s; stderr:\n%s", args, lastLines(se.String(), 10))
	}
	ranPIDs.Store(pgid, time.Now())
	data, _ := os.ReadFile(out)
	return launchRun{stdout: so.String(), stderr: se.String(), trace: string(data),
		status: cmd.ProcessState.Sys().(syscall.WaitStatus)}
}

// goCrashed tells whether lptrace's stderr holds a Go runtime's crash dump.
func goCrashed(stderr string) bool {
	return strings.Contains(stderr, "goroutine ") && strings.Contains(stderr, "runtime.")
}

// stderrEnd is the end of lptrace's stderr, for messages: its last lines, or
// those before a Go crash dump and the dump's first line.
func stderrEnd(stderr string) string {
	if i := strings.Index(stderr, "\ngoroutine "); i >= 0 && goCrashed(stderr) {
		stderr = stderr[:i] + "\n[Go crash dump]"
	}
	return lastLines(stderr, 8)
}

// sigName is a signal's name as strace writes it: SIGSEGV.
func sigName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return sig.String()
}

// death is one way a program dies, as dies_after_g.py takes it.
type death struct {
	how string
	// sig is the signal that kills the program; 0: it exits with status 5.
	sig syscall.Signal
	// closing is strace's last line for the process, "+++ exited with 5
	// +++" or "+++ killed by SIGKILL +++". The program turns core dumps
	// off (RLIMIT_CORE 0), so SIGSEGV and SIGABRT come without strace's
	// " (core dumped)", which strace prints only where the kernel says a
	// core was written.
	closing string
}

var deaths = []death{
	{"os_exit", 0, "exited with 5"},
	{"sigterm", syscall.SIGTERM, "killed by SIGTERM"},
	{"sigkill", syscall.SIGKILL, "killed by SIGKILL"},
	{"segfault", syscall.SIGSEGV, "killed by SIGSEGV"},
	{"abort", syscall.SIGABRT, "killed by SIGABRT"},
}

var diesAfterG = filepath.Join(programsDir, "dies_after_g.py")

// corePiped: with a core_pattern that pipes cores to a program (apport,
// systemd-coredump), the kernel dumps whatever RLIMIT_CORE says, and
// reports "core dumped".
var corePiped = func() bool {
	data, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	return strings.HasPrefix(string(data), "|")
}()

// checkClosingLine checks that strace's closing line for process pid is
// said once, as strace says it: alone on its line, "[pid N] " before it
// where lines carry the process. strace writes it where the trace goes;
// here it may be on lptrace's stderr or in the -o file, but once.
func checkClosingLine(t *testing.T, d death, pid int, stderr, trace string) {
	t.Helper()
	text := regexp.QuoteMeta(d.closing)
	if d.sig == syscall.SIGSEGV || d.sig == syscall.SIGABRT {
		if corePiped {
			text += `(?: \(core dumped\))?`
		}
	}
	line := regexp.MustCompile(`(?m)^(?:\[pid +` + strconv.Itoa(pid) + `\] )?(?:\[tid +\d+(?: [^\]]*)?\] )?\+\+\+ ` + text + ` \+\+\+$`)
	n := len(line.FindAllString(stderr, -1)) + len(line.FindAllString(trace, -1))
	if n != 1 {
		t.Errorf("%s: strace's closing line %q said %d times, want once; lptrace's stderr:\n%s\nthe trace's end:\n%s",
			d.how, "+++ "+d.closing+" +++", n, stderrEnd(stderr), lastLines(trace, 3))
	}
}

// diesOK tells whether the interpreter can die the way d says: the
// segfault needs faulthandler._sigsegv or ctypes.
func diesOK(py Python, d death) bool {
	if d.how != "segfault" {
		return true
	}
	return exec.Command(py.Path, "-c", "import faulthandler; faulthandler._sigsegv").Run() == nil || hasModules(py, "ctypes")
}

// A launched program calls last_words() and dies at once: by os._exit(5),
// by SIGTERM at its default action, by SIGKILL, by a segfault, by abort().
// last_words is in the trace (the events the program recorded before its
// death are all read), lptrace closes with strace's line for that death
// ("+++ exited with 5 +++", "+++ killed by SIGKILL +++"), and lptrace ends
// as its program did: exit status 5, or killed by the same signal (as
// session.Launch means it to: "lptrace dies by the same signal, as strace
// does"; a shell then sees 128+signal), never with a Go crash dump.
func TestDeathLastWordsLaunch(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, d := range deaths {
				if !diesOK(py, d) {
					t.Logf("%s: no way to segfault here (no faulthandler._sigsegv nor ctypes)", d.how)
					continue
				}
				r := launchTraced(t, nil, py.Path, diesAfterG, d.how, "launch")
				if goCrashed(r.stderr) {
					t.Errorf("%s: lptrace crashed (%s):\n%s", d.how, howEnded(r.status), stderrEnd(r.stderr))
				}
				if strings.Contains(r.stderr, "still alive after") || strings.Contains(r.stderr, "unknown way") {
					t.Fatalf("%s: the program did not die as asked: %s", d.how, r.stderr)
				}
				switch {
				case d.sig == 0 && !(r.status.Exited() && r.status.ExitStatus() == 5):
					t.Errorf("%s: lptrace ended with %v, want exit status 5, the program's", d.how, howEnded(r.status))
				case d.sig != 0 && !(r.status.Signaled() && r.status.Signal() == d.sig):
					t.Errorf("%s: lptrace ended with %v, want killed by %s, as the program was", d.how, howEnded(r.status), sigName(d.sig))
				}
				if calls(r.trace)["last_words"] == nil {
					t.Errorf("%s: last_words, the program's last call, is not in the trace (%d lines; the last: %q); lptrace's stderr:\n%s",
						d.how, strings.Count(r.trace, "\n"), lastLines(r.trace, 3), stderrEnd(r.stderr))
				}
				pid := launchedPID(r.stderr)
				checkClosingLine(t, d, pid, r.stderr, r.trace)
			}
			if l := leftovers(); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

// The same deaths in a program lptrace attached to: it waits for the
// test's word on a socket (after "attached"), then calls last_words() and
// dies. last_words is in the trace, strace's closing line is said, and
// lptrace ends by itself.
func TestDeathLastWordsAttach(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, d := range deaths {
				if !diesOK(py, d) {
					t.Logf("%s: no way to segfault here (no faulthandler._sigsegv nor ctypes)", d.how)
					continue
				}
				tg := startProgram(t, py, "dies_after_g.py", d.how, "attach")
				tr := startAttach(t, tg.PID)
				c := dial(t, tg.Port)
				if _, err := fmt.Fprintf(c.conn, "die\n"); err != nil {
					t.Fatalf("%s: the word to die: %v", d.how, err)
				}
				st := tg.exit(t, 10*time.Second)
				switch {
				case d.sig == 0 && !(st.Exited() && st.ExitStatus() == 5):
					t.Fatalf("%s: the program ended with %v, want exit status 5; its stderr: %q", d.how, howEnded(st), tg.Stderr())
				case d.sig != 0 && !(st.Signaled() && st.Signal() == d.sig):
					t.Fatalf("%s: the program ended with %v, want killed by %s; its stderr: %q", d.how, howEnded(st), sigName(d.sig), tg.Stderr())
				}
				select {
				case <-tr.done:
				case <-time.After(15 * time.Second):
					t.Fatalf("%s: lptrace still runs 15s after its target died: %s", d.how, tr.Stderr())
				}
				ranPIDs.Store(tr.cmd.Process.Pid, time.Now())
				stderr, trace := tr.Stderr(), tr.Trace()
				if goCrashed(stderr) {
					t.Errorf("%s: lptrace crashed:\n%s", d.how, stderrEnd(stderr))
				}
				if calls(trace)["last_words"] == nil {
					t.Errorf("%s: last_words, the program's last call, is not in the trace (%d lines: %q); lptrace's stderr:\n%s",
						d.how, strings.Count(trace, "\n"), lastLines(trace, 3), stderrEnd(stderr))
				}
				checkClosingLine(t, d, tg.PID, stderr, trace)
			}
			if l := leftovers(); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

// launchedPID is the program's PID, from "process N started".
func launchedPID(stderr string) int {
	m := regexp.MustCompile(`process (\d+) started`).FindStringSubmatch(stderr)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// howEnded says how a process ended, in words.
func howEnded(st syscall.WaitStatus) string {
	switch {
	case st.Exited():
		return fmt.Sprintf("exit status %d", st.ExitStatus())
	case st.Signaled():
		s := "killed by " + sigName(st.Signal())
		if st.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("status %#x", uint32(st))
}

// jsonEvent is the part of a --json line these tests read.
type jsonEvent struct {
	PID      int    `json:"pid"`
	Event    string `json:"event"`
	Function string `json:"function"`
}

// jsonCalls reads a --json trace: the call events of function fn, by PID.
func jsonCalls(t *testing.T, trace, fn string) map[int]int {
	t.Helper()
	out := map[int]int{}
	sc := bufio.NewScanner(strings.NewReader(trace))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev jsonEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		if ev.Event == "call" && ev.Function == fn {
			out[ev.PID]++
		}
	}
	return out
}

// droppedReported is the number of events lptrace says were dropped or
// lost, over all its messages; -1 if it says none were.
func droppedReported(stderr string) int {
	n := -1
	said := regexp.MustCompile(`(\d+) events? (?:were |was |have been )?(?:dropped|lost)|(?:dropped|lost) (\d+) events?`)
	for _, m := range said.FindAllStringSubmatch(stderr, -1) {
		k, _ := strconv.Atoi(m[1] + m[2])
		if n < 0 {
			n = 0
		}
		n += k
	}
	return n
}

const mpSquares = "RESULT 0 1 4 9 16 25 36 49 64 81 100 121 144 169 196 225 256 289 324 361"

// checkPoolProgram checks that mp_pool.py ran to its normal end under
// lptrace: its output, its exit status (lptrace's, which is the
// program's), and returns the program's PID.
func checkPoolProgram(t *testing.T, r launchRun) int {
	t.Helper()
	if goCrashed(r.stderr) {
		t.Fatalf("lptrace crashed:\n%s", stderrEnd(r.stderr))
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	pid := 0
	if len(lines) == 2 {
		fmt.Sscanf(lines[0], "PARENT %d", &pid)
	}
	if pid == 0 || lines[1] != mpSquares {
		t.Errorf("the program printed %q, want PARENT <pid> and %q; lptrace's stderr:\n%s", r.stdout, mpSquares, lastLines(r.stderr, 10))
	}
	if !r.status.Exited() || r.status.ExitStatus() != 0 {
		t.Errorf("lptrace ended with %v, want exit status 0, the program's; stderr:\n%s", howEnded(r.status), lastLines(r.stderr, 10))
	}
	return pid
}

// multiprocessing's first example, with the "fork" start method:
// Pool(2).map(square_it, range(20)), whose workers exit (os._exit, from
// multiprocessing's own code) as soon as the map is done, traced with -f.
// The trace holds the 20 calls of square_it, each from a forked worker,
// none from the parent; or lptrace says how many events it dropped. A
// loss that nothing reports fails: it was 0-3 calls of 20 on 3.11 and
// 3.12, silently, while 20 of 20 showed when the workers lived a second
// longer.
func TestMultiprocessingPoolFork(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue // -f follows forks through os.register_at_fork
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			r := launchTraced(t, []string{"-f", "--json"}, py.Path, filepath.Join(programsDir, "mp_pool.py"), "fork")
			parent := checkPoolProgram(t, r)
			children := map[int]bool{}
			for _, m := range regexp.MustCompile(`process (\d+) \(forked by (\d+)\) attached`).FindAllStringSubmatch(r.stderr, -1) {
				if pid, _ := strconv.Atoi(m[1]); m[2] == strconv.Itoa(parent) {
					children[pid] = true
				}
			}
			if len(children) != 2 {
				// (lptrace announces a child at its first events: a worker
				// none of whose events arrived goes unannounced.)
				t.Errorf("lptrace announced %d followed workers (%v), want the pool's 2; stderr:\n%s", len(children), children, lastLines(r.stderr, 10))
			}
			byPID := jsonCalls(t, r.trace, "square_it")
			total := 0
			for pid, n := range byPID {
				total += n
				if !children[pid] {
					t.Errorf("%d calls of square_it from process %d, not a worker of %d (workers: %v)", n, pid, parent, children)
				}
			}
			if jsonCalls(t, r.trace, "pool_job")[parent] != 1 {
				t.Errorf("the parent's pool_job is not in the trace once: %v", jsonCalls(t, r.trace, "pool_job"))
			}
			if total == 20 {
				return
			}
			dropped := droppedReported(r.stderr)
			switch {
			case dropped < 0:
				t.Errorf("%d calls of square_it in the trace (by PID: %v), want 20, and lptrace does not say that any event was dropped; stderr:\n%s",
					total, byPID, lastLines(r.stderr, 10))
			case total > 20 || total+dropped < 20:
				t.Errorf("%d calls of square_it in the trace (by PID: %v), want 20; lptrace says %d events were dropped; stderr:\n%s",
					total, byPID, dropped, lastLines(r.stderr, 10))
			default:
				t.Logf("%d of 20 calls of square_it; lptrace reports %d events dropped", total, dropped)
			}
		})
	}
}

// The same pool with the "spawn" and "forkserver" start methods. Their
// workers are not forks of the traced program: spawn starts each worker
// as a fresh interpreter (fork and exec, by _posixsubprocess, which runs
// no at-fork callback; the exec would drop the hook anyway); forkserver
// starts a server process the same way and forks the workers from that
// untraced server. -f follows forks only, so what lptrace shows (as
// observed, 3.7 to 3.15) is the parent alone: its calls (main, pool_job,
// the multiprocessing machinery), "process N started" and "process N
// exited", no "(forked by" line, no square_it. (3.8+ also starts
// multiprocessing's resource tracker that way, untraced.) What matters
// here: the program runs to its normal end with its output, lptrace ends
// with the program's exit status 0, and the parent's own calls are in the
// trace.
func TestMultiprocessingStartMethods(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, method := range []string{"spawn", "forkserver"} {
				r := launchTraced(t, []string{"-f", "--json"}, py.Path, filepath.Join(programsDir, "mp_pool.py"), method)
				parent := checkPoolProgram(t, r)
				for _, fn := range []string{"main", "pool_job"} {
					if got := jsonCalls(t, r.trace, fn); got[parent] != 1 {
						t.Errorf("%s: the parent's %s is not in the trace once (calls by PID: %v); stderr:\n%s", method, fn, got, lastLines(r.stderr, 10))
					}
				}
				t.Logf("%s: %d events; lptrace said:\n%s", method, strings.Count(r.trace, "\n"), r.stderr)
			}
		})
	}
}
