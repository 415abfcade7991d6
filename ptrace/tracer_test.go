package ptrace

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A real process, seized and stopped through requests made both ways:
// handed to the tracer thread, and directly inside Exec. Wait sees a stop
// that comes at once (its quick polls) and one that comes late (its
// blocking wait), and times out when none comes.
func TestExecAndWait(t *testing.T) {
	c := exec.Command("sleep", "30")
	if err := c.Start(); err != nil {
		t.Skip(err)
	}
	defer c.Wait()
	defer c.Process.Kill()
	pid := c.Process.Pid
	tr := NewTracer()
	if err := tr.Seize(pid); err != nil {
		t.Fatal(err)
	}
	defer tr.Detach(pid, 0)
	if err := tr.Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	st, err := tr.Wait(pid, time.Second)
	if err != nil || !st.InterruptStop() {
		t.Fatalf("first stop: %v, %v", st, err)
	}
	outside, err := tr.GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	onThread := false
	tr.Exec(func() {
		onThread = unix.Gettid() == tr.tid
		inside, err := tr.GetRegs(pid)
		if err != nil || inside.PC() != outside.PC() {
			t.Errorf("GetRegs inside Exec: PC %#x, %v; outside: %#x", inside.PC(), err, outside.PC())
		}
		// Nothing to wait for: a timeout, and a wait left armed.
		if st, err := tr.Wait(pid, 5*time.Millisecond); err != ErrTimeout {
			t.Errorf("Wait on a stopped thread: %v, %v; want a timeout", st, err)
		}
		// Resumed and stopped again: that stop goes to the armed wait.
		// (t.Error, not t.Fatal, on this thread: Goexit would end it)
		if err := tr.Cont(pid, 0); err != nil {
			t.Error(err)
			return
		}
		if err := tr.Interrupt(pid); err != nil {
			t.Error(err)
			return
		}
		if st, err := tr.Wait(pid, time.Second); err != nil || !st.InterruptStop() {
			t.Errorf("stop after the timeout: %v, %v", st, err)
		}
		// No wait armed: a stop that comes at once is polled.
		tr.Cont(pid, 0)
		tr.Interrupt(pid)
		if st, err := tr.Wait(pid, time.Second); err != nil || !st.InterruptStop() {
			t.Errorf("quick stop: %v, %v", st, err)
		}
	})
	if !onThread {
		t.Error("Exec did not run on the tracer thread")
	}
	// A stop that comes after the quick polls: the blocking wait has it.
	tr.Cont(pid, 0)
	go func() {
		time.Sleep(20 * time.Millisecond)
		tr.Interrupt(pid)
	}()
	if st, err := tr.Wait(pid, time.Second); err != nil || !st.InterruptStop() {
		t.Errorf("late stop: %v, %v", st, err)
	}
	c.Process.Kill()
	if st, err := tr.Wait(pid, time.Second); err != nil || !st.Exited {
		t.Errorf("after SIGKILL: %v, %v; want exited", st, err)
	}
}
