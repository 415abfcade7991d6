package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Signals that arrive while lptrace's call runs in a thread reach the
// program: its Python handler runs.
func TestExecSignalsReachTarget(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "sleep")
			cmd := exec.Command(lptraceBin, "exec", strconv.Itoa(tg.PID), "import time\nfor i in range(10): time.sleep(0.05)")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(250 * time.Millisecond) // inside the call
			syscall.Kill(tg.PID, syscall.SIGUSR1)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exec: %v", err)
			}
			r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "STATE.get('usr1', 0)")
			if r.Code != 0 || r.Stdout != "1\n" {
				t.Fatalf("the program's SIGUSR1 handler ran %q times (exit %d, stderr %q), want 1", r.Stdout, r.Code, r.Stderr)
			}
			if !tg.Alive() {
				t.Fatal("target died")
			}
		})
	}
}

// Ctrl-C while the code runs: lptrace lets go at once, says that the code
// had started and goes on, and the program is fine.
func TestExecInterrupted(t *testing.T) {
	py := newest(t)
	tg := startTarget(t, py, "sleep")
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command(lptraceBin, "exec", strconv.Itoa(tg.PID), fmt.Sprintf("import time; time.sleep(2); open(%q, 'w').close()", marker))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Start()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if took := time.Since(start); took > time.Second {
		t.Errorf("lptrace took %v to stop after SIGINT", took)
	}
	if err == nil || !strings.Contains(stderr.String(), "interrupted; the code had started and goes on running") {
		t.Errorf("exit %v, stderr %q", err, stderr.String())
	}
	// The code finishes on its own.
	if !eventually(5*time.Second, func() bool { _, err := os.Stat(marker); return err == nil }) {
		t.Errorf("the code did not finish within 5 s of the interrupt")
	}
	tg.waitTicks(t, 3, 5*time.Second)
	r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "print('ok')")
	if r.Code != 0 || r.Stdout != "ok\n" {
		t.Fatalf("after the interrupt: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if other := tg.Other(); len(other) > 0 {
		t.Errorf("the target's own stdout got %q", other)
	}
}

// An output far larger than the pipe arrives whole, in order, from a
// target idle in a blocking call (the direct route: lptrace reads while
// the call runs) and from a busy one (a pending call).
func TestExecLargeOutput(t *testing.T) {
	for _, py := range []Python{oldest(t), newest(t)} {
		for _, mode := range []string{"sleep", "cpu"} {
			t.Run(py.Name+"/"+mode, func(t *testing.T) {
				tg := startTarget(t, py, mode)
				r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "for i in range(100000): print('line %d' % i)")
				lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
				if r.Code != 0 || len(lines) != 100000 || lines[0] != "line 0" || lines[99999] != "line 99999" {
					t.Fatalf("exit %d, %d lines, stderr %q", r.Code, len(lines), r.Stderr)
				}
				if r.Elapsed > scaled(8*time.Second) {
					t.Errorf("took %v: the output stalled", r.Elapsed)
				}
				tg.waitTicks(t, 3, 5*time.Second)
			})
		}
	}
}

// A process that exits while lptrace attaches: a clear message or success,
// never a hang or a crash.
func TestExecTargetExits(t *testing.T) {
	py := newest(t)
	for i := 0; i < 12; i++ {
		life := time.Duration(i*15) * time.Millisecond
		cmd := exec.Command(py.Path, "-c", "import time; time.sleep("+strconv.FormatFloat(life.Seconds(), 'f', 3, 64)+")")
		cmd.Start()
		time.Sleep(life / 2)
		r := lptrace(t, "", "exec", strconv.Itoa(cmd.Process.Pid), "1")
		cmd.Wait()
		ok := r.Code == 0 ||
			strings.Contains(r.Stderr, "exited") || strings.Contains(r.Stderr, "no such process") ||
			strings.Contains(r.Stderr, "zombie") || strings.Contains(r.Stderr, "not a Python process")
		if l := leftovers(); len(l) > 0 {
			t.Errorf("life %v: left behind %v", life, l)
		}
		if !ok || (r.Code != 0 && len(strings.Split(strings.TrimSpace(r.Stderr), "\n")) != 1) {
			t.Errorf("life %v: exit %d, stderr %q", life, r.Code, r.Stderr)
		}
	}
}

// Two Python runtimes in one process: refused, naming both.
func TestExecTwoRuntimes(t *testing.T) {
	var libs []string
	var host Python
	for _, py := range pythons(t) {
		ms, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(py.Path)), "lib", "libpython*.so.1.0"))
		// (glibc builds with ctypes only: the host loads the other with it)
		if len(ms) == 1 && strings.HasPrefix(py.Name, "3.") && !strings.HasSuffix(py.Name, "-musl") && !py.FreeThreaded() {
			libs = append(libs, ms[0])
			host = py
		}
	}
	if len(libs) < 2 {
		t.Skip("needs two interpreters built with libpython")
	}
	other := libs[0]
	if strings.Contains(other, filepath.Base(filepath.Dir(filepath.Dir(host.Path)))) {
		other = libs[1]
	}
	cmd := exec.Command(host.Path, "-c", "import ctypes, sys, time\nctypes.CDLL(sys.argv[1])\nprint('ready'); sys.stdout.flush(); time.sleep(60)", other)
	out, _ := cmd.StdoutPipe()
	cmd.Start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 6)
	out.Read(buf)
	r := lptrace(t, "", "exec", strconv.Itoa(cmd.Process.Pid), "1")
	if r.Code == 0 || !strings.Contains(r.Stderr, "2 Python runtimes") || !strings.Contains(r.Stderr, filepath.Base(other)) {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(cmd.Process.Pid)); err != nil {
		t.Error("target died")
	}
}

// A target in its own mount and PID namespaces with a private /tmp, as in a
// container: exec, attach, stack and pdb work by its host PID, and nothing
// is left in either /tmp.
func TestExecContainer(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs unshare and root")
	}
	py := newest(t)
	// $0 python, $1 -u, $2 the script, $3 the mode. The script is read before
	// the private /tmp hides it (the checkout may live under /tmp).
	inner := "src=$(cat \"$2\") && mount -t tmpfs tmpfs /tmp && touch /tmp/inside && exec \"$0\" -u -c \"$src\" \"$3\""
	tg := startTarget(t, py, "sleep", unshare, "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", inner)
	r := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import os; os.getpid(), sorted(os.listdir('/tmp'))")
	if r.Code != 0 || r.Stdout != "(1, ['inside'])\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// The other commands work there too: attach (events flow), stack, pdb.
	pid := strconv.Itoa(tg.PID)
	if r = lptrace(t, "", "-p", pid, "--duration", "700ms"); !strings.Contains(r.Stderr, "heartbeat_step (") {
		t.Errorf("attach in a container: exit %d\n%s", r.Code, r.Stderr)
	}
	if r = lptrace(t, "", "stack", pid); r.Code != 0 || !strings.Contains(r.Stdout, "in main") {
		t.Errorf("stack in a container: exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if r = lptrace(t, "", "-d", pid); r.Code != 0 || !strings.Contains(r.Stderr, "session ended") {
		t.Errorf("pdb in a container (Ctrl-D at once): exit %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	r = lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import os; sorted(os.listdir('/tmp'))")
	if r.Stdout != "['inside']\n" {
		t.Errorf("left in the target's /tmp: %q (stderr %q)", r.Stdout, r.Stderr)
	}
	if l := leftovers(); len(l) > 0 {
		t.Errorf("left in the host's /tmp: %v", l)
	}
}

// --tid runs the code in the thread asked for: every thread of a
// multi-threaded program, the main thread (blocked in join) included.
func TestExecTid(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "threads")
			ents, _ := os.ReadDir("/proc/" + strconv.Itoa(tg.PID) + "/task")
			for _, e := range ents {
				r := lptrace(t, "", "exec", "--timeout", "5s", "--tid", e.Name(), strconv.Itoa(tg.PID),
					"import threading; getattr(threading.current_thread(), 'native_id', "+e.Name()+")")
				if r.Code != 0 || r.Stdout != e.Name()+"\n" {
					t.Errorf("--tid %s: exit %d stdout %q stderr %q", e.Name(), r.Code, r.Stdout, r.Stderr)
				}
			}
			r := lptrace(t, "", "exec", "--tid", "1", strconv.Itoa(tg.PID), "1")
			if r.Code == 0 || !strings.Contains(r.Stderr, "has no thread 1") {
				t.Errorf("--tid 1: exit %d stderr %q", r.Code, r.Stderr)
			}
			if !tg.Alive() {
				t.Fatal("target died")
			}
		})
	}
}

// The program's Ctrl-C while exec'd code runs in its main thread: one that
// comes early is held until the thread is back in the program's code (the
// code runs to its end); one that comes once the hold expired (250 ms)
// interrupts the code, which reports it, and lptrace hands it back to the
// program. Either way the program catches it once.
func TestExecProgramCtrlC(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "sigint")
			caught := func() int { return tg.said("caught") }
			oneCaught := func(what string, before int) {
				deadline := time.Now().Add(2 * time.Second)
				for caught() == before && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond)
				if n := caught() - before; n != 1 {
					t.Errorf("%s: the program caught %d Ctrl-C, want 1", what, n)
				}
			}
			pid := strconv.Itoa(tg.PID)

			// Early: while lptrace holds the thread for its short code.
			before := caught()
			go func() {
				time.Sleep(40 * time.Millisecond)
				syscall.Kill(tg.PID, syscall.SIGINT)
			}()
			// Only the direct route holds signals (-v says which one ran);
			// the main thread, busy, may get the code as a pending call.
			r := lptrace(t, "", "exec", "-v", pid, "import time\nfor i in range(8): time.sleep(0.01)\nprint('done')")
			pending := strings.Contains(r.Stderr, "pending call")
			if !pending && (r.Code != 0 || r.Stdout != "done\n") {
				t.Errorf("early Ctrl-C: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
			}
			if !pending {
				oneCaught("early Ctrl-C", before)
			} else {
				t.Logf("early Ctrl-C: the code ran as a pending call, not checked: %q", r.Stderr)
				time.Sleep(300 * time.Millisecond)
			}

			// Late: into code that runs long.
			before = caught()
			marker := filepath.Join(t.TempDir(), "running")
			go func() {
				for i := 0; i < 500; i++ {
					if _, err := os.Stat(marker); err == nil {
						time.Sleep(300 * time.Millisecond)
						syscall.Kill(tg.PID, syscall.SIGINT)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			r = lptrace(t, "", "exec", "-v", pid, fmt.Sprintf("import time\nopen(%q, 'w').close()\nfor i in range(150): time.sleep(0.01)\nprint('done')", marker))
			if strings.Contains(r.Stderr, "pending call") {
				t.Logf("late Ctrl-C: the code ran as a pending call, not checked: %q", r.Stderr)
				return
			}
			if r.Code != 1 || !strings.Contains(r.Stderr, "KeyboardInterrupt") || !strings.Contains(r.Stderr, "handed back") {
				t.Errorf("late Ctrl-C: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
			}
			oneCaught("late Ctrl-C", before)
		})
	}
}
