package inject

import (
	"encoding/binary"
	"fmt"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"golang.org/x/sys/unix"
)

// Supported reports whether injection is implemented for this architecture.
const Supported = true

const (
	sysMmap     = unix.SYS_MMAP
	sysMprotect = unix.SYS_MPROTECT
	sysMunmap   = unix.SYS_MUNMAP
	sysFutex    = unix.SYS_FUTEX
	sysFcntl    = unix.SYS_FCNTL

	sysRestartSyscall = unix.SYS_RESTART_SYSCALL
)

// restartParks: a thread in restart_syscall is never used on arm64. The
// kernel rewinds an interrupted call before lptrace sees the stop (below),
// so the thread resumes by executing its svc again; for restart_syscall
// that needs the kernel's restart block intact, which a system call of
// lptrace's code interrupted by a signal replaces, and which rt_sigreturn
// (the trampoline's way back when lptrace is gone) cancels.
const restartParks = false

// Block layout; keep in step with asm/trampoline_arm64.s.
const (
	offNCalls  = 0x08
	offDone    = 0x10
	offAborted = 0x18
	offFrame   = 0x20
	offSig     = 0x30
	offCalls   = 0x80
	callSize   = 88
	// AAPCS64 has no red zone, but code that keeps data below sp for a
	// moment exists (it loses it only to signal handlers): skip 128 bytes.
	stackSkip = 128
)

// struct rt_sigframe (arch/arm64/kernel/signal.c, the kernel's ABI): the
// offsets the trampoline and buildBlock use.
const (
	frameSize     = 4688 // siginfo (128) + ucontext (176 + sigcontext's 4384)
	frameRegs     = 312  // uc_mcontext.regs[31], then sp, pc, pstate
	frameFPSIMD   = 592  // uc_mcontext.__reserved: the fpsimd_context record
	frameReserved = 4096 // __reserved's size: the records and their terminator
	fpsimdMagic   = 0x46508001
	fpsimdSize    = 528
	pstateBTYPE   = 0xc00 // PSTATE.BTYPE: the kind of branch that led here
	svcInsn       = 0xd4000001
	svcInsnLength = 4
)

// syscallBytes holds one instruction.
type syscallBytes = [4]byte

// syscallInsn is `svc #0`.
var syscallInsn = syscallBytes{0x01, 0x00, 0x00, 0xd4}

// syscallAt tells whether the stopped thread is in a system call, and
// which one. arm64's kernel rewinds an interrupted call before the thread
// stops for lptrace (do_signal: x0 back to the first argument, pc back
// onto the svc, the call number forgotten: NT_ARM_SYSTEM_CALL reads -1),
// so the registers show a thread about to make the call, x8 its number;
// they cannot tell it from a thread that was about to make it in fact,
// which is the same state (the call blocks with the GIL released, and
// resumes by executing the svc). Restoring the registers exactly restarts
// the call: no restart to compute, unlike x86-64.
//
// A thread stopped just after an svc has come back from call x8: that
// number too, not in the call (keepCallAlive may count it as parked).
func (inj *Injector) syscallAt(tid int, r *ptrace.Regs) (nr int, inSyscall bool) {
	var at syscallBytes
	if inj.readMem(tid, r.Pc, at[:]) == nil && at == syscallInsn {
		return int(int64(r.Regs[8])), true
	}
	if inj.readMem(tid, r.Pc-svcInsnLength, at[:]) == nil && at == syscallInsn {
		return int(int64(r.Regs[8])), false
	}
	return -1, false
}

// endsWithEINTR: system calls that any stop of the thread ends with
// -EINTR, which the kernel never turns into a restart: epoll_pwait,
// epoll_pwait2, rt_sigtimedwait (arm64 has no epoll_wait).
var endsWithEINTR = map[int]bool{unix.SYS_EPOLL_PWAIT: true, unix.SYS_EPOLL_PWAIT2: true, unix.SYS_RT_SIGTIMEDWAIT: true}

const errEINTR = -4

// endedByStop tells whether a thread stopped with these registers has just
// come back from one of endsWithEINTR's calls with -EINTR; before holds
// the instruction before pc.
func endedByStop(r *ptrace.Regs, before syscallBytes) (ended, waitsForever bool) {
	nr := int(int64(r.Regs[8]))
	if !endsWithEINTR[nr] || int64(r.Regs[0]) != errEINTR || before != syscallInsn {
		return false, false
	}
	switch nr {
	case unix.SYS_EPOLL_PWAIT: // a timeout in ms, -1 for none
		return true, int32(r.Regs[3]) < 0
	case unix.SYS_EPOLL_PWAIT2: // a struct timespec, NULL for none
		return true, r.Regs[3] == 0
	default: // rt_sigtimedwait(set, info, timeout, size)
		return true, r.Regs[2] == 0
	}
}

// beforeStop reads, before lptrace stops the thread, the call it is blocked
// in when that is one of endsWithEINTR's: the stop ends it with EINTR over
// its first argument (x0), which ptrace does not show afterwards (the
// kernel's copy, orig_x0, is not in any register set), and /proc did
// before.
func (inj *Injector) beforeStop(tid int) *proc.Syscall {
	sc, err := proc.ReadSyscall(inj.pid, tid)
	if err != nil || sc.Running || !endsWithEINTR[sc.Nr] {
		return nil
	}
	return &sc
}

// makeRestartable puts back the call that endedByStop accepted, as the
// kernel rewinds an interrupted call (x0 its first argument again, pc on
// the svc), when pre shows that very call before the stop (its number,
// the other five arguments, sp and pc): the thread makes it again when it
// resumes, and the program never sees the stop. Else it sees EINTR, which
// Python 3 answers by waiting again (2.7 raises).
func makeRestartable(r *ptrace.Regs, pre *proc.Syscall) {
	if pre == nil || uint64(pre.Nr) != r.Regs[8] || pre.PC != r.Pc || pre.SP != r.Sp {
		return
	}
	for i := 1; i < 6; i++ {
		if pre.Args[i] != r.Regs[i] {
			return
		}
	}
	r.Regs[0] = pre.Args[0]
	r.Pc -= svcInsnLength
}

func syscallArg(r *ptrace.Regs, i int) uint64 { return r.Regs[i] }

// resumeRegs: the registers the thread resumes with are those it stopped
// with (the kernel rewound an interrupted call already, see syscallAt).
func resumeRegs(orig ptrace.Regs) ptrace.Regs { return orig }

// setNoSyscall has nothing to do: at every stop lptrace uses, the kernel
// has forgotten the call number already (see syscallAt), and it decides
// on a restart before the stop, not after.
func setNoSyscall(r *ptrace.Regs) {}

// layout places a block of n calls and a signal frame below the thread's
// stack pointer.
type layout struct {
	base, frame uint64 // absolute addresses
	size        int    // bytes from base to the end of the frame
}

func newLayout(sp uint64, ncalls, _ int) layout {
	frame := (sp-stackSkip)&^15 - frameSize
	calls := uint64(offCalls+callSize*ncalls+15) &^ 15
	base := (frame - calls) &^ 63
	return layout{base: base, frame: frame, size: int(frame + frameSize - base)}
}

// buildBlock writes the context block: the call table, and the signal
// frame that rt_sigreturn restores the thread from (the trampoline adds
// the FP/SIMD registers, the signal mask and the alternate stack).
func buildBlock(l layout, calls []Call, orig ptrace.Regs, sig int) []byte {
	b := make([]byte, l.size)
	le := binary.LittleEndian
	le.PutUint64(b[offNCalls:], uint64(len(calls)))
	le.PutUint64(b[offAborted:], ^uint64(0))
	le.PutUint64(b[offFrame:], l.frame-l.base)
	le.PutUint64(b[offSig:], uint64(sig))
	putCalls(b, calls)
	f := b[l.frame-l.base:]
	for i, v := range orig.Regs {
		le.PutUint64(f[frameRegs+8*i:], v)
	}
	le.PutUint64(f[frameRegs+8*31:], orig.Sp)
	le.PutUint64(f[frameRegs+8*32:], orig.Pc)
	le.PutUint64(f[frameRegs+8*33:], orig.Pstate)
	le.PutUint32(f[frameFPSIMD:], fpsimdMagic)
	le.PutUint32(f[frameFPSIMD+4:], fpsimdSize)
	return b
}

// redirect sets the registers that send the thread into the trampoline:
// pc and sp, and no pending branch type (a thread stopped at a branch's
// target would otherwise fault on the trampoline's first instruction in a
// page guarded by BTI).
func redirect(orig ptrace.Regs, tramp, base uint64) ptrace.Regs {
	r := orig
	r.Pc = tramp
	r.Sp = base
	r.Pstate &^= pstateBTYPE
	return r
}

// pentryImage builds the start of a pending-call buffer: the entry code and
// its data (see asm/trampoline_arm64.s: the same offsets as on x86-64). The
// code string follows at pendingCodeOffset.
func pentryImage(buf, size, pyRun, munmap uint64, m tracingMark, h headroom) []byte {
	img := make([]byte, pendingCodeOffset)
	copy(img, trampCode[pentryStart:pentryEnd])
	le := binary.LittleEndian
	for i, v := range []uint64{buf + pendingCodeOffset, pyRun, size, munmap, pendingBlocked,
		m.get, m.enter, m.leave, m.off, h.get, h.set, Headroom, h.depthAt} {
		le.PutUint64(img[0x180+8*i:], v)
	}
	return img
}

const pendingCodeOffset = 0x1e8

// probeImage is the stack probe to run at address at, branching to resume
// when done; false when resume is beyond a branch's reach.
func probeImage(at, resume uint64) ([]byte, bool) {
	n := probeEnd - probeStart
	code := make([]byte, n)
	copy(code, trampCode[probeStart:probeEnd])
	from := at + uint64(n) - 4
	off := int64(resume-from) / 4
	if off < -1<<25 || off >= 1<<25 {
		return nil, false
	}
	binary.LittleEndian.PutUint32(code[n-4:], 0x14000000|uint32(off)&0x03ffffff)
	return code, true
}

// checkArch returns the size of the FP/SIMD area the trampoline saves
// (Injector.xsave; it lives in the signal frame, which has room for it).
func checkArch(t *ptrace.Tracer, tid int) (int, error) { return fpsimdSize, nil }

// saveVectors reads the SVE registers of a thread stopped outside a system
// call, when they hold live state (the header's SVE_PT_REGS_SVE): the
// trampoline saves only their low 128 bits (the FP/SIMD registers), and
// any system call discards the rest. A thread stopped in a system call has
// none (the call discarded them). A busy Python thread on a CPU with SVE
// has them (seen in qemu: the C library's string functions use SVE).
func (inj *Injector) saveVectors(tid int, inSyscall bool) []byte {
	if inSyscall {
		return nil
	}
	b, err := inj.tr.SVE(tid)
	if err != nil || len(b) < sveHeader {
		return nil
	}
	return b
}

const (
	sveHeader     = 16 // struct user_sve_header
	sveMagic      = 0x53564501
	sveContextHdr = 16 // struct sve_context
)

// addVectors puts the saved SVE registers into the block's signal frame
// after the FP/SIMD record (an sve_context: header, vector length, then the
// registers in the layout ptrace gives them), so that rt_sigreturn restores
// them should lptrace be gone; else restoreVectors does.
func addVectors(b []byte, l layout, vectors []byte) error {
	if vectors == nil {
		return nil
	}
	le := binary.LittleEndian
	vl := int(le.Uint16(vectors[8:]))
	vq := vl / 16
	regs := 546 * vq // 32 Z of vl bytes, 16 P and the FFR of vl/8 bytes
	size := (sveContextHdr + regs + 15) &^ 15
	at := int(l.frame-l.base) + frameFPSIMD + fpsimdSize
	if vq == 0 || len(vectors) < sveHeader+regs || fpsimdSize+size+16 > frameReserved {
		return fmt.Errorf("SVE vector length %d is too long for a signal frame", vl)
	}
	le.PutUint32(b[at:], sveMagic)
	le.PutUint32(b[at+4:], uint32(size))
	le.PutUint16(b[at+8:], uint16(vl))
	copy(b[at+sveContextHdr:], vectors[sveHeader:sveHeader+regs])
	return nil
}

// restoreVectors puts back the SVE registers that the calls' system calls
// discarded.
func (inj *Injector) restoreVectors(th *Thread) error {
	if th.vectors == nil {
		return nil
	}
	return inj.tr.SetSVE(th.TID, th.vectors)
}

// inStringOp: the C library's string routines are not recognized on arm64
// (see the x86-64 version).
func (inj *Injector) inStringOp(tid int, pc uint64) bool { return false }

// Blocking system calls in which a thread has released the GIL (CPython
// releases it around every blocking call it makes). arm64 has the
// generic table: no poll, select, epoll_wait or pause (the C library uses
// ppoll, pselect6, epoll_pwait, ppoll).
var parkedSyscalls = map[int]string{
	unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_PREAD64: "pread64", unix.SYS_PWRITE64: "pwrite64",
	unix.SYS_READV: "readv", unix.SYS_WRITEV: "writev", unix.SYS_NANOSLEEP: "nanosleep",
	unix.SYS_SENDFILE: "sendfile", unix.SYS_CONNECT: "connect", unix.SYS_ACCEPT: "accept",
	unix.SYS_SENDTO: "sendto", unix.SYS_RECVFROM: "recvfrom", unix.SYS_SENDMSG: "sendmsg", unix.SYS_RECVMSG: "recvmsg",
	unix.SYS_WAIT4: "wait4", unix.SYS_FCNTL: "fcntl", unix.SYS_FLOCK: "flock", unix.SYS_RT_SIGTIMEDWAIT: "rt_sigtimedwait",
	unix.SYS_RT_SIGSUSPEND: "rt_sigsuspend", unix.SYS_FUTEX: "futex", unix.SYS_CLOCK_NANOSLEEP: "clock_nanosleep",
	unix.SYS_WAITID: "waitid", unix.SYS_PSELECT6: "pselect6", unix.SYS_PPOLL: "ppoll",
	unix.SYS_EPOLL_PWAIT: "epoll_pwait", unix.SYS_ACCEPT4: "accept4", unix.SYS_EPOLL_PWAIT2: "epoll_pwait2",
}

// SyscallName names an arm64 system call for messages.
func SyscallName(nr int) string {
	if n, ok := parkedSyscalls[nr]; ok {
		return n
	}
	if nr == sysRestartSyscall {
		return "restart_syscall"
	}
	return fmt.Sprintf("syscall %d", nr)
}
