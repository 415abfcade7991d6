package inject

import (
	"encoding/binary"
	"fmt"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
)

// Supported reports whether injection is implemented for this architecture.
const Supported = true

const (
	sysMmap     = 9
	sysMprotect = 10
	sysMunmap   = 11

	// x86_64 system call numbers of the blocking calls a parked thread may sit in.
	sysRestartSyscall = 219
)

// Kernel-internal return values of an interrupted system call, seen in rax
// when a thread stops inside one.
const (
	errRestartSys          = -512
	errRestartNoIntr       = -513
	errRestartNoHand       = -514
	errRestartRestartBlock = -516
)

// Block layout; keep in step with asm/trampoline_amd64.s.
const (
	offNCalls   = 0x08
	offDone     = 0x10
	offAborted  = 0x18
	offXSave    = 0x20
	offRegs     = 0x28
	offSig      = 0x30
	offCalls    = 0x80
	callSize    = 88
	redZoneSkip = 264 // 128-byte red zone + the 256 that `ret 256` drops + 8 for rip
)

// syscallState tells whether the stopped thread was inside a system call and
// which one.
func syscallState(r *ptrace.Regs) (nr int, inSyscall bool) {
	rax := int64(r.Rax)
	if int64(r.Orig_rax) < 0 {
		return -1, false
	}
	switch rax {
	case errRestartSys, errRestartNoIntr, errRestartNoHand, errRestartRestartBlock:
		return int(r.Orig_rax), true
	}
	return int(r.Orig_rax), false
}

// endsWithEINTR: system calls that any stop of the thread ends with
// -EINTR, which the kernel never turns into a restart: epoll_wait,
// epoll_pwait, epoll_pwait2, rt_sigtimedwait.
var endsWithEINTR = map[int]bool{232: true, 281: true, 441: true, 128: true}

const errEINTR = -4

// syscallBytes holds a system call instruction.
type syscallBytes = [2]byte

// syscallInsn is the x86-64 system call instruction.
var syscallInsn = syscallBytes{0x0f, 0x05}

// beforeStop: the registers tell all on x86-64 (see the arm64 version).
func (inj *Injector) beforeStop(tid int) *proc.Syscall { return nil }

// restartParks: a thread in restart_syscall may take a call (see Classify):
// lptrace restarts it itself (resumeRegs).
const restartParks = true

// syscallAt tells whether the stopped thread was inside a system call and
// which one: the registers say it on x86-64.
func (inj *Injector) syscallAt(tid int, r *ptrace.Regs) (nr int, inSyscall bool) {
	return syscallState(r)
}

// endedByStop tells whether a thread stopped with these registers has just
// come back from one of endsWithEINTR's calls with -EINTR; before holds
// the two bytes before rip (a syscall instruction, or it returned long
// ago). waitsForever: the call had no timeout.
func endedByStop(r *ptrace.Regs, before syscallBytes) (ended, waitsForever bool) {
	nr := int(int64(r.Orig_rax))
	if !endsWithEINTR[nr] || int64(r.Rax) != errEINTR || before != syscallInsn {
		return false, false
	}
	switch nr {
	case 232, 281: // epoll_wait, epoll_pwait: a timeout in ms, -1 for none
		return true, int32(r.R10) < 0
	case 441: // epoll_pwait2: a struct timespec, NULL for none
		return true, r.R10 == 0
	default: // rt_sigtimedwait(set, info, timeout, size)
		return true, r.Rdx == 0
	}
}

// makeRestartable turns the registers endedByStop accepted into those of
// a call interrupted with -ERESTARTNOHAND: the kernel restarts it when the
// thread resumes with no signal handler to run, and makes it -EINTR when
// a handler runs, as it would have been.
func makeRestartable(r *ptrace.Regs, _ *proc.Syscall) {
	code := int64(errRestartNoHand)
	r.Rax = uint64(code)
}

func syscallArg(r *ptrace.Regs, i int) uint64 {
	switch i {
	case 0:
		return r.Rdi
	case 1:
		return r.Rsi
	case 2:
		return r.Rdx
	case 3:
		return r.R10
	case 4:
		return r.R8
	}
	return r.R9
}

// resumeRegs returns the registers the thread must resume with when it
// restores itself (the trampoline pops them): the kernel's restart of an
// interrupted system call done by hand, since the trampoline runs with
// orig_rax = -1 and the kernel no longer knows about the call.
func resumeRegs(orig ptrace.Regs) ptrace.Regs {
	r := orig
	if nr, in := syscallState(&orig); in {
		switch int64(orig.Rax) {
		case errRestartSys, errRestartNoIntr, errRestartNoHand:
			r.Rax = uint64(nr)
			r.Rip -= 2
		case errRestartRestartBlock:
			r.Rax = sysRestartSyscall
			r.Rip -= 2
		}
	}
	return r
}

// layout places a block of n calls below the thread's stack pointer.
type layout struct {
	base, regs, resume, xsave uint64 // absolute addresses
	size                      int    // bytes from base to resume+8
}

func newLayout(sp uint64, ncalls, xsaveSize int) layout {
	resume := sp - redZoneSkip
	regs := resume - 16*8
	callsEnd := uint64(offCalls + callSize*ncalls)
	xsaveOff := (callsEnd + 63) &^ 63
	total := xsaveOff + (uint64(xsaveSize)+63)&^63
	base := (regs - total) &^ 63
	return layout{base: base, regs: regs, resume: resume, xsave: base + xsaveOff, size: int(resume + 8 - base)}
}

// buildBlock writes the context block: the call table, an empty XSAVE area
// (its header must be zero for XRSTOR), the registers to restore and the
// resume address.
func buildBlock(l layout, calls []Call, orig ptrace.Regs, sig int) []byte {
	b := make([]byte, l.size)
	le := binary.LittleEndian
	le.PutUint64(b[offNCalls:], uint64(len(calls)))
	le.PutUint64(b[offAborted:], ^uint64(0))
	le.PutUint64(b[offXSave:], l.xsave-l.base)
	le.PutUint64(b[offRegs:], l.regs-l.base)
	le.PutUint64(b[offSig:], uint64(sig))
	putCalls(b, calls)
	r := resumeRegs(orig)
	saved := []uint64{r.Rax, r.Rbx, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Rbp, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.Eflags, r.Rip}
	for i, v := range saved {
		le.PutUint64(b[l.regs-l.base+uint64(8*i):], v)
	}
	return b
}

// setNoSyscall makes the kernel see no system call to restart when the
// thread resumes (orig_rax = -1).
func setNoSyscall(r *ptrace.Regs) { r.Orig_rax = ^uint64(0) }

// redirect sets the registers that send the thread into the trampoline:
// only rip, rsp, and orig_rax = -1 so that the kernel does not apply its
// system-call restart logic to the trampoline.
func redirect(orig ptrace.Regs, tramp, base uint64) ptrace.Regs {
	r := orig
	r.Rip = tramp
	r.Rsp = base
	r.Orig_rax = ^uint64(0)
	return r
}

// pentryImage builds the start of a pending-call buffer: the entry code and
// its data (see asm/trampoline_amd64.s). The code string follows at
// pendingCodeOffset.
func pentryImage(buf, size, pyRun, munmap uint64, m tracingMark, h headroom) []byte {
	img := make([]byte, pendingCodeOffset)
	copy(img, trampCode[pentryStart:pentryEnd])
	le := binary.LittleEndian
	le.PutUint64(img[0x180:], buf+pendingCodeOffset)
	le.PutUint64(img[0x188:], pyRun)
	le.PutUint64(img[0x190:], size)
	le.PutUint64(img[0x198:], munmap)
	le.PutUint64(img[0x1a0:], pendingBlocked)
	le.PutUint64(img[0x1a8:], m.get)
	le.PutUint64(img[0x1b0:], m.enter)
	le.PutUint64(img[0x1b8:], m.leave)
	le.PutUint64(img[0x1c0:], m.off)
	le.PutUint64(img[0x1c8:], h.get)
	le.PutUint64(img[0x1d0:], h.set)
	le.PutUint64(img[0x1d8:], Headroom)
	le.PutUint64(img[0x1e0:], h.depthAt)
	return img
}

const pendingCodeOffset = 0x1e8

// probeImage is the stack probe (see asm/trampoline_amd64.s) to run at
// address at, jumping to resume when done.
func probeImage(at, resume uint64) ([]byte, bool) {
	n := probeEnd - probeStart
	code := make([]byte, (n+7)&^7) // whole words: text is written a word at a time
	copy(code, trampCode[probeStart:probeEnd])
	binary.LittleEndian.PutUint64(code[n-8:], resume)
	return code, true
}

// saveVectors, addVectors, restoreVectors: the trampoline's XSAVE saves
// every vector register there is.
func (inj *Injector) saveVectors(tid int, inSyscall bool) []byte { return nil }

func addVectors(b []byte, l layout, vectors []byte) error { return nil }

func (inj *Injector) restoreVectors(th *Thread) error { return nil }

func checkArch(t *ptrace.Tracer, tid int) (xsave int, err error) {
	xsave, err = t.XStateSize(tid)
	if err != nil {
		return 0, fmt.Errorf("read the XSAVE area size: %w", err)
	}
	if xsave < 576 {
		return 0, fmt.Errorf("unexpected XSAVE area size %d", xsave)
	}
	return xsave, nil
}

// Blocking system calls in which a thread has released the GIL (CPython
// releases it around every blocking call it makes).
var parkedSyscalls = map[int]string{
	0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev",
	23: "select", 34: "pause", 35: "nanosleep", 40: "sendfile", 42: "connect", 43: "accept", 44: "sendto",
	45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 61: "wait4", 72: "fcntl", 73: "flock", 128: "rt_sigtimedwait",
	130: "rt_sigsuspend", 202: "futex", 230: "clock_nanosleep", 232: "epoll_wait", 247: "waitid",
	270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4", 441: "epoll_pwait2",
	sysRestartSyscall: "restart_syscall",
}

const (
	sysFutex = 202
	sysFcntl = 72
)

// SyscallName names an x86_64 system call for messages.
func SyscallName(nr int) string {
	if n, ok := parkedSyscalls[nr]; ok {
		return n
	}
	return fmt.Sprintf("syscall %d", nr)
}

// inStringOp tells whether the thread stopped at a string instruction of
// the C library's memset or memcpy (rep stos, rep movs): a long C call
// filling or copying megabytes (numpy, BLAS) spends its page faults there,
// and such a routine holds no lock. (The C library's other code is not
// named where it is stripped.)
func (inj *Injector) inStringOp(tid int, pc uint64) bool {
	var b [3]byte
	if inj.readMem(tid, pc, b[:]) != nil || b[0] != 0xf3 {
		return false
	}
	op := b[1]
	if op == 0x48 { // REX.W
		op = b[2]
	}
	switch op {
	case 0xa4, 0xa5, 0xaa, 0xab: // movs, stos
		return true
	}
	return false
}
