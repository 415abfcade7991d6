package launch

import "github.com/lptrace/lptrace/ptrace"

// brk #0; the trap leaves the program counter on it (the kernel reports
// SIGTRAP with pc at the brk, unlike x86-64's int3, which it has passed).
var breakpointInsn = []byte{0x00, 0x00, 0x20, 0xd4}

const breakpointAdvance = 0

// secondArg is a function's second argument at its entry (AAPCS64: x1).
func secondArg(r *ptrace.Regs) uint64 { return r.Regs[1] }
