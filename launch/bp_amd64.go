package launch

import "github.com/lptrace/lptrace/ptrace"

// int3; the trap leaves the instruction pointer after it.
var breakpointInsn = []byte{0xcc}

const breakpointAdvance = 1

// secondArg is a function's second argument at its entry (System V: rsi).
func secondArg(r *ptrace.Regs) uint64 { return r.Rsi }
