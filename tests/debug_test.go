package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	"unsafe"
)

// pdb through lptrace's own stdin/stdout on every Python: the main thread
// stops at its next line, where/p/n work, c ends the session, and the
// program runs on with no trace function left.
func TestPdbCommands(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "sleep")
			r := lptrace(t, "where\np STATE['mode']\nn\nc\n", "-d", strconv.Itoa(tg.PID))
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			for _, want := range []string{"(Pdb) ", "target.py(", ")main()", "'sleep'", "-> "} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("no %q in the session:\n%s", want, r.Stdout)
				}
			}
			if !strings.Contains(r.Stderr, "session ended") {
				t.Errorf("stderr: %s", r.Stderr)
			}
			tg.waitTicks(t, 3, 5*time.Second) // it runs on
			e := lptrace(t, "", "exec", "--tid", strconv.Itoa(tg.PID), strconv.Itoa(tg.PID), "import sys; sys.gettrace() is None")
			if e.Stdout != "True\n" {
				t.Errorf("a trace function is left in the main thread: %q %q", e.Stdout, e.Stderr)
			}
			tg.checkUntouched(t)
		})
	}
}

// lptrace killed in the middle of a session: the program goes on as if
// `c` had been typed.
func TestPdbTracerKilled(t *testing.T) {
	ps := pythons(t)
	for _, py := range []Python{ps[0], ps[len(ps)-1]} {
		t.Run(py.Name, func(t *testing.T) {
			tg := startTarget(t, py, "sleep")
			cmd := exec.Command(lptraceBin, "-d", strconv.Itoa(tg.PID))
			stdin, _ := cmd.StdinPipe()
			defer stdin.Close()
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), "(Pdb) ") {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("no prompt: %s", out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			n := tg.tickCount()
			time.Sleep(300 * time.Millisecond)
			if tg.tickCount() > n+1 {
				t.Errorf("the main thread did not stop at the prompt")
			}
			cmd.Process.Kill()
			cmd.Wait()
			ranPIDs.Store(cmd.Process.Pid, time.Now())
			tg.waitTicks(t, n+3, 5*time.Second)
			e := lptrace(t, "", "exec", "--tid", strconv.Itoa(tg.PID), strconv.Itoa(tg.PID), "import sys; sys.gettrace() is None")
			if e.Stdout != "True\n" {
				t.Errorf("a trace function is left: %q %q", e.Stdout, e.Stderr)
			}
		})
	}
}

// The prompt on a real terminal: lptrace's line editing (x/term) on a
// pseudo-terminal; Ctrl-D ends the session.
func TestPdbTerminal(t *testing.T) {
	ps := pythons(t)
	py := ps[len(ps)-1]
	tg := startTarget(t, py, "sleep")
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	cmd := exec.Command(lptraceBin, "-d", strconv.Itoa(tg.PID))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait(); ranPIDs.Store(cmd.Process.Pid, time.Now()) }()
	out := &syncBuffer{}
	go io.Copy(out, master)
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q on the terminal:\n%s", s, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("(Pdb) ")
	master.Write([]byte("p 6*7\r"))
	waitFor("42")
	master.Write([]byte{4}) // Ctrl-D
	waitFor("session ended")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("lptrace: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lptrace did not exit after Ctrl-D")
	}
	tg.waitTicks(t, 3, 5*time.Second)
}

// openPTY opens a pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		return nil, nil, e
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		return nil, nil, e
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lptrace stack: every thread with its name, main thread first, the
// program's functions in the frames; --locals and --json.
func TestStack(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "threads")
			r := lptrace(t, "", "stack", strconv.Itoa(tg.PID))
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			if !regexp.MustCompile(`^Thread ` + strconv.Itoa(tg.PID) + ` \(MainThread\)(: [^\n]+)?\n`).MatchString(r.Stdout) {
				t.Errorf("the main thread is not first:\n%s", head(r.Stdout, 5))
			}
			// Every thread by the ID the trace shows (2.7 to 3.7 know a
			// thread by its pthread handle only: lptrace finds its ID).
			for _, m := range regexp.MustCompile(`(?m)^Thread (\d+) `).FindAllStringSubmatch(r.Stdout, -1) {
				if _, err := os.Stat("/proc/" + strconv.Itoa(tg.PID) + "/task/" + m[1]); err != nil {
					t.Errorf("thread %s is not one of the process's", m[1])
				}
			}
			if strings.Contains(r.Stdout, "Thread ident") {
				t.Errorf("a thread without its ID:\n%s", r.Stdout)
			}
			// What each thread was doing before lptrace came, and each
			// frame's line of source.
			if !strings.Contains(r.Stdout, "): blocked in ") || !strings.Contains(r.Stdout, "\n    time.sleep(") {
				t.Errorf("no thread's state or source lines:\n%s", r.Stdout)
			}
			for _, want := range []string{"in sleeper_tick", "in waiter_tick", "in main", ", daemon)"} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("no %q:\n%s", want, r.Stdout)
				}
			}
			if strings.Contains(r.Stdout, "<lptrace>") || len(regexp.MustCompile(`(?m)^Thread `).FindAllString(r.Stdout, -1)) != 9 {
				t.Errorf("want the program's 9 threads and none of our frames:\n%s", r.Stdout)
			}
			r = lptrace(t, "", "stack", "--locals", "--json", strconv.Itoa(tg.PID))
			sc := bufio.NewScanner(strings.NewReader(r.Stdout))
			sc.Buffer(nil, 1<<20)
			var threads int
			sawLocal := false
			for sc.Scan() {
				var th struct {
					Name   string
					Frames []struct {
						Function string
						Locals   [][2]string
					}
				}
				if err := json.Unmarshal(sc.Bytes(), &th); err != nil {
					t.Fatalf("not JSON: %q", sc.Text())
				}
				threads++
				for _, f := range th.Frames {
					for _, l := range f.Locals {
						if f.Function == "waiter_tick" && l[0] == "q" && strings.HasPrefix(l[1], "<Queue at 0x") {
							sawLocal = true
						}
					}
				}
			}
			if threads != 9 || !sawLocal {
				t.Errorf("%d threads, waiter_tick's q shown: %v\n%s", threads, sawLocal, head(r.Stdout, 5))
			}
			tg.checkUntouched(t)
		})
	}
}

// lptrace stack beside another session: the program's thread that runs
// another lptrace's code (an exec that sleeps, that lptrace holding the
// thread meanwhile) is listed with the program's frames, not left out, and
// the stack neither waits for that lptrace nor is refused.
func TestStackBesideExec(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "threads")
			pid := strconv.Itoa(tg.PID)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			other := exec.CommandContext(ctx, lptraceBin, "exec", pid, "import sys, time; print(1); sys.stdout.flush(); time.sleep(3)")
			out, err := other.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var otherErr bytes.Buffer
			other.Stderr = &otherErr
			if err := other.Start(); err != nil {
				t.Fatal(err)
			}
			defer other.Wait()
			if line, err := bufio.NewReader(out).ReadString('\n'); line != "1\n" {
				t.Fatalf("the other session's code did not start: %q %v; %s", line, err, otherErr.String())
			}
			r := lptrace(t, "", "stack", pid)
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			if strings.Contains(r.Stdout, "<lptrace>") || len(regexp.MustCompile(`(?m)^Thread `).FindAllString(r.Stdout, -1)) != 9 || !strings.Contains(r.Stdout, "in main") {
				t.Errorf("want the program's 9 threads and none of our frames:\n%s", r.Stdout)
			}
			io.Copy(io.Discard, out)
			if err := other.Wait(); err != nil {
				t.Errorf("the other session: %v: %s", err, otherErr.String())
			}
			tg.checkUntouched(t)
		})
	}
}

// lptrace stack --tasks: an asyncio program's tasks, each with what it
// awaits and its chain of coroutines, on every version with asyncio.run
// (3.7+; names from 3.8).
func TestStackTasks(t *testing.T) {
	prog := filepath.Join(programsDir, "tasks.py")
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(py.Path, prog)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			if line, _ := bufio.NewReader(out).ReadString('\n'); line != "READY\n" {
				t.Fatalf("the program did not start: %q", line)
			}
			r := lptrace(t, "", "stack", "--tasks", strconv.Itoa(cmd.Process.Pid))
			if r.Code != 0 {
				t.Fatalf("status %d: %s", r.Code, r.Stderr)
			}
			tasks := r.Stdout[strings.Index(r.Stdout, "\nTask ")+1:]
			want := []string{"in nap\n", "in worker_a\n", "in worker_b\n", "in main\n", "    await nap()\n"}
			if py.AtLeast(3, 8) {
				want = append(want, "Task worker-a (pending, awaiting ", "Task worker-b (pending, awaiting ", "(pending, awaiting gather(worker-a, worker-b))")
			}
			for _, w := range want {
				if !strings.Contains(tasks, w) {
					t.Errorf("no %q in:\n%s", w, r.Stdout)
				}
			}
			if strings.Count(tasks, "\nTask ")+1 != 3 {
				t.Errorf("want 3 tasks:\n%s", tasks)
			}
		})
	}
}
