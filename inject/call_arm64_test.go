package inject

import (
	"os/exec"
	"testing"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"golang.org/x/sys/unix"
)

// What the call recipe relies on (see syscallAt): a thread stopped inside
// clock_nanosleep shows pc moved back onto the svc, x0 back to the call's
// first argument, x8 the call's number and the call number's regset at -1.
func TestStopInsideSyscallArm64(t *testing.T) {
	cmd := exec.Command("python3", "-c", "import time; time.sleep(30)")
	if err := cmd.Start(); err != nil {
		t.Skip("no python3:", err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	var sc *proc.Syscall
	for i := 0; i < 500; i++ {
		if s, err := proc.ReadSyscall(pid, pid); err == nil && !s.Running && s.Nr == unix.SYS_CLOCK_NANOSLEEP {
			sc = &s
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sc == nil {
		t.Fatal("python3 never slept in clock_nanosleep")
	}
	tr := ptrace.NewTracer()
	if err := tr.Seize(pid); err != nil {
		t.Fatal(err)
	}
	defer tr.Detach(pid, 0)
	tr.Interrupt(pid)
	if _, err := tr.Wait(pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r, err := tr.GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	var at syscallBytes
	proc.VMRead(pid, r.Pc, at[:])
	nr, err := tr.SyscallNr(pid)
	if err != nil {
		t.Fatal(err)
	}
	if at != syscallInsn || r.Regs[0] != sc.Args[0] || r.Regs[8] != unix.SYS_CLOCK_NANOSLEEP || nr != -1 {
		t.Errorf("at pc %x: insn % x, x0 %#x (first argument %#x), x8 %d, NT_ARM_SYSTEM_CALL %d",
			r.Pc, at, r.Regs[0], sc.Args[0], r.Regs[8], nr)
	}
	live, err := tr.SVELive(pid)
	t.Logf("SVE state live: %v (%v)", live, err)
}

// A busy Python thread stopped anywhere: its SVE state, logged.
func TestBusyThreadSVEArm64(t *testing.T) {
	cmd := exec.Command("python3", "-c", "x = 0\nwhile True: x += 1")
	if err := cmd.Start(); err != nil {
		t.Skip("no python3:", err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	time.Sleep(2 * time.Second)
	tr := ptrace.NewTracer()
	if err := tr.Seize(pid); err != nil {
		t.Fatal(err)
	}
	defer tr.Detach(pid, 0)
	for i := 0; i < 5; i++ {
		tr.Interrupt(pid)
		if _, err := tr.Wait(pid, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		live, err := tr.SVELive(pid)
		r, _ := tr.GetRegs(pid)
		t.Logf("pc %#x: SVE live %v (%v)", r.Pc, live, err)
		tr.Cont(pid, 0)
		time.Sleep(50 * time.Millisecond)
	}
}
