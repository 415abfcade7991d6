package launch

import "github.com/lptrace/lptrace/ptrace"

// brk #0; the trap leaves the program counter on it. (Launch mode needs the
// injection engine, which arm64 does not have yet: Start refuses first.)
var breakpointInsn = []byte{0x00, 0x00, 0x20, 0xd4}

const breakpointAdvance = 0

// secondArg is a function's second argument at its entry (x1).
func secondArg(r *ptrace.Regs) uint64 { return r.Regs[1] }
