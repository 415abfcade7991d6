package inject

import (
	"fmt"

	"github.com/lptrace/lptrace/ptrace"
)

// Supported reports whether injection is implemented for this architecture.
// On arm64 the register access is in place (package ptrace); the trampoline
// is not written yet.
const Supported = false

var trampCode []byte

const (
	trampStopped      = 0
	pendingCodeOffset = 0x80
	offDone           = 0x10
	sysMmap           = 222
	sysMprotect       = 226
	sysMunmap         = 215
	sysFutex          = 98
	sysFcntl          = 25
	sysRestartSyscall = 128
)

var parkedSyscalls = map[int]string{}

func syscallState(r *ptrace.Regs) (int, bool) { return -1, false }
func syscallArg(r *ptrace.Regs, i int) uint64 { return r.Regs[i] }
func setNoSyscall(r *ptrace.Regs)             {}
func resumeRegs(orig ptrace.Regs) ptrace.Regs { return orig }

const probeStart, probeEnd = 0, 0

var syscallInsn [2]byte

func endedByStop(r *ptrace.Regs, before [2]byte) (bool, bool) { return false, false }
func makeRestartable(r *ptrace.Regs)                          {}

type layout struct {
	base uint64
	size int
}

func newLayout(sp uint64, ncalls, xsaveSize int) layout { return layout{} }
func buildBlock(l layout, calls []Call, orig ptrace.Regs, sig int) []byte {
	return nil
}
func redirect(orig ptrace.Regs, tramp, base uint64) ptrace.Regs                     { return orig }
func blockResults(b []byte, n int) (bool, int, []uint64)                            { return false, -1, nil }
func pentryImage(buf, size, pyRun, munmap uint64, m tracingMark, h headroom) []byte { return nil }
func checkArch(t *ptrace.Tracer, tid int) (int, error)                              { return 0, ErrUnsupportedArch }

// SyscallName names a system call for messages.
func SyscallName(nr int) string { return fmt.Sprintf("syscall %d", nr) }
