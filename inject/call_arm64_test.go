package inject

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
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
	sve, err := tr.SVE(pid)
	t.Logf("SVE registers: %d bytes (%v), live: %v", len(sve), err, (&Injector{tr: tr}).saveVectors(pid, false) != nil)
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
		live := (&Injector{tr: tr}).saveVectors(pid, false) != nil
		r, _ := tr.GetRegs(pid)
		t.Logf("pc %#x: SVE live %v", r.Pc, live)
		tr.Cont(pid, 0)
		time.Sleep(50 * time.Millisecond)
	}
}

// sveLoop is machine code that checks its own SVE registers for ever and
// exits with status 3 when they change (assembled with
// aarch64-linux-gnu-as from this source):
//
//		index z0.b, #0, #1        // z0: 0, 1, 2... over the whole vector
//		ptrue p1.b
//		cntb  x3
//	loop:	index z1.b, #0, #1
//		cmpne p3.b, p1/z, z0.b, z1.b
//		b.ne  fail
//		cntp  x2, p1, p1.b        // p1 still all true?
//		cmp   x2, x3
//		b.ne  fail
//		b     loop
//	fail:	mov x0, #3; mov x8, #94; svc #0   // exit_group(3)
const sveLoop = "00402104e1e31825e3e320040140210413a40124a1000054228420255f0003eb41000054faffff17600080d2c80b80d2010000d4"

// A thread stopped with live SVE state (beyond the FP/SIMD registers, which
// the trampoline saves) gets it back after calls, whether lptrace waits for
// the call to end (it writes the registers back through ptrace) or lets go
// in the middle (rt_sigreturn restores them from the signal frame).
func TestSVEStateKeptArm64(t *testing.T) {
	if cpu, _ := os.ReadFile("/proc/cpuinfo"); !strings.Contains(string(cpu), " sve") {
		t.Skip("no SVE on this CPU")
	}
	cmd := exec.Command("python3", "-c", `import ctypes, mmap, sys
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(bytes.fromhex(sys.argv[1]))
f = ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("ready", hex(ctypes.addressof(ctypes.c_char.from_buffer(m))), flush=True)
f()`, sveLoop)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Skip("no python3:", err)
	}
	defer cmd.Process.Kill()
	// Read the line, but wait for no exit: the test is the tracer, and a
	// wait of its own would take the thread's stops.
	b := make([]byte, 64)
	if n, _ := out.Read(b); n == 0 {
		t.Fatal("the loop did not start")
	}
	pid := cmd.Process.Pid
	running := func() bool {
		st, err := proc.ReadTaskStatus(pid, pid)
		return err == nil && st.State != 'Z'
	}
	time.Sleep(100 * time.Millisecond)
	inj := libcInjector(t, pid)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		th, err := inj.Attach(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ { // two calls at one stop, as an exec makes
			res, _, err := th.Run(ctx, []Call{{Fn: FnSyscall, Aux: unix.SYS_GETPID}})
			if err != nil || int(res[0]) != pid {
				t.Errorf("getpid: %v %v", res, err)
			}
		}
		if th.vectors == nil {
			t.Errorf("stop %d at %#x: no live SVE state", i, th.PC())
		} else {
			t.Logf("stop %d at %#x: vector length %d", i, th.PC(), int(th.vectors[8])|int(th.vectors[9])<<8)
		}
		inj.Restore(th)
		th.Release()
	}
	// Let go in the middle of a 300 ms sleep.
	th, err := inj.Attach(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	ts := th.SP() - 64<<10
	if err := inj.writeMem(pid, ts, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0xe1, 0x11, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	_, _, err = th.Run(short, []Call{{Fn: FnSyscall, Aux: unix.SYS_NANOSLEEP, Args: [6]uint64{ts}}})
	cancel()
	if err == nil || th.vectors == nil {
		t.Fatalf("the 300 ms call ended within 10 ms (%v), or found no live SVE state", err)
	}
	inj.Restore(th)
	th.Release()
	for i := 0; i < 30; i++ {
		if !running() {
			t.Fatal("the loop ended after the call ended alone")
		}
		time.Sleep(100 * time.Millisecond)
	}
	th, err = inj.Attach(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if inj.saveVectors(pid, th.InCall) == nil {
		t.Errorf("after the call ended alone: no live SVE state at %#x", th.PC())
	}
	th.Release()
	if !running() {
		t.Error("the loop ended")
	}
}

// A thread in epoll_wait with no timeout, which lptrace's stop ends with
// EINTR over its first argument: lptrace puts the call back (from what
// /proc showed before the stop), and the program never sees it return.
func TestEpollRestartedArm64(t *testing.T) {
	cmd := exec.Command("python3", "-c", `import ctypes, select
libc = ctypes.CDLL(None, use_errno=True)
ep = select.epoll()
ev = ctypes.create_string_buffer(64)
print("ready", ep.fileno(), flush=True)
while True:
    n = libc.epoll_wait(ep.fileno(), ev, 4, -1)
    print("returned", n, ctypes.get_errno(), flush=True)`)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Skip("no python3:", err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var epfd uint64
	if _, err := fmt.Sscanf(<-lines, "ready %d", &epfd); err != nil {
		t.Fatal("python3 did not start:", err)
	}
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		if sc, err := proc.ReadSyscall(pid, pid); err == nil && !sc.Running && sc.Nr == unix.SYS_EPOLL_PWAIT {
			break
		}
		if i == 500 {
			t.Fatal("python3 never waited in epoll_pwait")
		}
		time.Sleep(20 * time.Millisecond)
	}
	inj := libcInjector(t, pid)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		th, err := inj.Attach(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if !th.InCall || th.Syscall != unix.SYS_EPOLL_PWAIT || th.orig.Regs[0] != epfd {
			t.Errorf("stopped in call %v (%d), x0 %d: want epoll_pwait on %d", th.InCall, th.Syscall, int64(th.orig.Regs[0]), epfd)
		}
		res, _, err := th.Run(ctx, []Call{{Fn: FnSyscall, Aux: unix.SYS_GETPID}})
		if err != nil || int(res[0]) != pid {
			t.Errorf("getpid: %v %v", res, err)
		}
		inj.Restore(th)
		th.Release()
	}
	select {
	case l := <-lines:
		t.Errorf("the program saw its wait end: %q", l)
	case <-time.After(time.Second):
	}
	if sc, err := proc.ReadSyscall(pid, pid); err != nil || sc.Running || sc.Nr != unix.SYS_EPOLL_PWAIT || sc.Args[0] != epfd {
		t.Errorf("after the calls: %+v %v", sc, err)
	}
}
