package ptrace

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Regs is the general register set of a thread (struct user_pt_regs).
type Regs unix.PtraceRegsArm64

// PC is the program counter.
func (r *Regs) PC() uint64 { return r.Pc }

// SetPC sets the program counter.
func (r *Regs) SetPC(pc uint64) { r.Pc = pc }

// SP is the stack pointer.
func (r *Regs) SP() uint64 { return r.Sp }

const (
	ntPRStatus      = 1
	ntARMSystemCall = 0x404
	ptraceSetRegSet = 0x4205
	ptraceGetRegSet = 0x4204
)

// GetRegs reads the general registers of a stopped thread (NT_PRSTATUS).
func (t *Tracer) GetRegs(tid int) (Regs, error) {
	var r unix.PtraceRegsArm64
	var err error
	t.do(func() { err = unix.PtraceGetRegSetArm64(tid, ntPRStatus, &r) })
	return Regs(r), wrapErr(err)
}

// SetRegs writes the general registers of a stopped thread.
func (t *Tracer) SetRegs(tid int, r Regs) error {
	var err error
	raw := unix.PtraceRegsArm64(r)
	t.do(func() { err = unix.PtraceSetRegSetArm64(tid, ntPRStatus, &raw) })
	return wrapErr(err)
}

// SetSyscallNr sets the system call number the kernel sees for a thread
// stopped in a system call (NT_ARM_SYSTEM_CALL); -1 cancels the kernel's
// restart logic, the arm64 equivalent of orig_rax = -1.
func (t *Tracer) SetSyscallNr(tid int, nr int32) error {
	var err error
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&nr))}
	iov.SetLen(4)
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceSetRegSet, uintptr(tid), ntARMSystemCall, uintptr(unsafe.Pointer(&iov)), 0, 0)
		if e != 0 {
			err = e
		}
	})
	return wrapErr(err)
}

// SyscallNr reads the system call number of a stopped thread.
func (t *Tracer) SyscallNr(tid int) (int32, error) {
	var nr int32
	var err error
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&nr))}
	iov.SetLen(4)
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceGetRegSet, uintptr(tid), ntARMSystemCall, uintptr(unsafe.Pointer(&iov)), 0, 0)
		if e != 0 {
			err = e
		}
	})
	return nr, wrapErr(err)
}

const ntARMSVE = 0x405

// SVE reads the thread's SVE registers (NT_ARM_SVE: struct user_sve_header,
// then the registers) when they hold live state (the header's flag
// SVE_PT_REGS_SVE), or nil: not live, or no SVE in the CPU or the kernel.
func (t *Tracer) SVE(tid int) ([]byte, error) {
	var hdr [16]byte // size, max_size (u32), vl, max_vl, flags, reserved (u16)
	if err := t.getRegSet(tid, ntARMSVE, hdr[:]); err != nil {
		if err == unix.EINVAL || err == unix.ENODEV {
			return nil, nil
		}
		return nil, wrapErr(err)
	}
	const svePtRegsSVE = 1
	size := int(binary.LittleEndian.Uint32(hdr[0:]))
	if binary.LittleEndian.Uint16(hdr[12:])&svePtRegsSVE == 0 || size < len(hdr) || size > 1<<20 {
		return nil, nil
	}
	buf := make([]byte, size)
	if err := t.getRegSet(tid, ntARMSVE, buf); err != nil {
		return nil, wrapErr(err)
	}
	return buf, nil
}

// getRegSet reads a register set into b (PTRACE_GETREGSET).
func (t *Tracer) getRegSet(tid int, set uintptr, b []byte) error {
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	var err error
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceGetRegSet, uintptr(tid), set, uintptr(unsafe.Pointer(&iov)), 0, 0)
		if e != 0 {
			err = e
		}
	})
	return err
}

// SetSVE writes back what SVE read.
func (t *Tracer) SetSVE(tid int, b []byte) error {
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	var err error
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceSetRegSet, uintptr(tid), ntARMSVE, uintptr(unsafe.Pointer(&iov)), 0, 0)
		if e != 0 {
			err = e
		}
	})
	return wrapErr(err)
}
