package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Regs is the general register set of a thread (struct user_regs_struct).
type Regs unix.PtraceRegs

// PC is the instruction pointer.
func (r *Regs) PC() uint64 { return r.Rip }

// SetPC sets the instruction pointer.
func (r *Regs) SetPC(pc uint64) { r.Rip = pc }

// SP is the stack pointer.
func (r *Regs) SP() uint64 { return r.Rsp }

// GetRegs reads the general registers of a stopped thread.
func (t *Tracer) GetRegs(tid int) (Regs, error) {
	var r unix.PtraceRegs
	var err error
	t.do(func() { err = unix.PtraceGetRegs(tid, &r) })
	return Regs(r), wrapErr(err)
}

// SetRegs writes the general registers of a stopped thread, orig_rax
// included (it steers the kernel's system-call restart).
func (t *Tracer) SetRegs(tid int, r Regs) error {
	var err error
	raw := unix.PtraceRegs(r)
	t.do(func() { err = unix.PtraceSetRegs(tid, &raw) })
	return wrapErr(err)
}

const ntX86XState = 0x202

// XStateSize returns the size of the thread's XSAVE area as the kernel
// reports it through PTRACE_GETREGSET(NT_X86_XSTATE): an upper bound of what
// XSAVE writes for the features the kernel enabled.
func (t *Tracer) XStateSize(tid int) (int, error) {
	buf := make([]byte, 64<<10)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	var err error
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), ntX86XState, uintptr(unsafe.Pointer(&iov)), 0, 0)
		if e != 0 {
			err = e
		}
	})
	if err != nil {
		return 0, wrapErr(err)
	}
	return int(iov.Len), nil
}
