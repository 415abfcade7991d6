package inject

import (
	"encoding/binary"
	"testing"

	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
)

// The block sits below the thread's stack pointer, past its 128-byte red
// zone: the trampoline starts at its base with rsp 16-byte aligned (the
// System V rule at a call), its XSAVE area is 64-byte aligned and between
// the call table and the saved registers, and `ret 256` from the resume
// address gives back the original rsp.
func TestNewLayout(t *testing.T) {
	const redZone = 128
	for _, c := range []struct {
		sp            uint64
		ncalls, xsave int
	}{
		{0x7ffd_0000_1000, 0, 576},
		{0x7ffd_0000_1000, 1, 832},
		{0x7ffd_1234_5678, 7, 2696},     // sp 8 mod 16, as after a call
		{0x7ffd_1234_5671, 40, 2568},    // sp odd (no ABI promises in the middle of a function)
		{0x7ffd_1234_567f, 3, 1088 + 1}, // an XSAVE size not a multiple of 64
	} {
		l := newLayout(c.sp, c.ncalls, c.xsave)
		if l.base%16 != 0 {
			t.Errorf("%+v: base %#x not 16-byte aligned", c, l.base)
		}
		if l.xsave%64 != 0 {
			t.Errorf("%+v: XSAVE area %#x not 64-byte aligned", c, l.xsave)
		}
		if end := l.base + uint64(l.size); end != l.resume+8 {
			t.Errorf("%+v: block ends at %#x, the resume rip's end is %#x", c, end, l.resume+8)
		}
		if top := l.base + uint64(l.size); top > c.sp-redZone {
			t.Errorf("%+v: block reaches %#x, into the red zone below sp %#x", c, top, c.sp)
		}
		if l.resume != c.sp-264 || l.resume+8+256 != c.sp {
			t.Errorf("%+v: resume rip at %#x: ret 256 leaves rsp at %#x, not sp %#x", c, l.resume, l.resume+8+256, c.sp)
		}
		// 15 registers and the flags, popped in order, end at the resume rip.
		if l.regs+16*8 != l.resume {
			t.Errorf("%+v: saved registers at %#x, resume rip at %#x", c, l.regs, l.resume)
		}
		if calls := l.base + offCalls + uint64(callSize*c.ncalls); l.xsave < calls {
			t.Errorf("%+v: XSAVE area %#x overlaps the call table (ends %#x)", c, l.xsave, calls)
		}
		if l.xsave+uint64(c.xsave) > l.regs {
			t.Errorf("%+v: XSAVE area %#x+%d overlaps the saved registers at %#x", c, l.xsave, c.xsave, l.regs)
		}
	}
}

// resumeRegs redoes the kernel's restart of a system call interrupted by
// the stop: rax back to the call's number (restart_syscall for
// ERESTART_RESTARTBLOCK) and rip back over the 2-byte syscall instruction.
// A call that was not interrupted, or a thread in no call, resumes as it
// was. orig_rax is left as it was (redirect makes it -1 for the trampoline:
// TestRedirect).
func TestResumeRegs(t *testing.T) {
	const rip, clockNanosleep, epollWait = 0x7f00_0000_1234, 230, 232
	neg := func(v int64) uint64 { return uint64(v) }
	for _, c := range []struct {
		name             string
		rax, origRax     uint64
		wantRax, wantRip uint64
	}{
		{"ERESTARTSYS", neg(-512), clockNanosleep, clockNanosleep, rip - 2},
		{"ERESTARTNOINTR", neg(-513), clockNanosleep, clockNanosleep, rip - 2},
		{"ERESTARTNOHAND", neg(-514), epollWait, epollWait, rip - 2},
		{"ERESTART_RESTARTBLOCK", neg(-516), clockNanosleep, 219, rip - 2},
		{"returned", 0, clockNanosleep, 0, rip},
		{"EINTR", neg(-4), epollWait, neg(-4), rip},
		{"ENOIOCTLCMD (-515, no restart)", neg(-515), 16, neg(-515), rip},
		{"no system call, rax as ERESTARTSYS", neg(-512), neg(-1), neg(-512), rip},
	} {
		orig := ptrace.Regs{Rax: c.rax, Orig_rax: c.origRax, Rip: rip, Rsp: 0x7ffd_0000_1000, Rdi: 1, R10: 2, Eflags: 0x246}
		r := resumeRegs(orig)
		if r.Rax != c.wantRax || r.Rip != c.wantRip || r.Orig_rax != c.origRax {
			t.Errorf("%s: rax %#x rip %#x orig_rax %#x, want rax %#x rip %#x orig_rax %#x",
				c.name, r.Rax, r.Rip, r.Orig_rax, c.wantRax, c.wantRip, c.origRax)
		}
		r.Rax, r.Rip = orig.Rax, orig.Rip
		if r != orig {
			t.Errorf("%s: other registers changed: %+v, was %+v", c.name, r, orig)
		}
	}
}

// The trampoline is entered at the block's base with no system call for
// the kernel to restart; nothing else changes.
func TestRedirect(t *testing.T) {
	orig := ptrace.Regs{Rax: uint64(0xffff_ffff_ffff_fe00), Orig_rax: 230, Rip: 0x7f00_0000_1234, Rsp: 0x7ffd_0000_1000, Rbx: 5, Eflags: 0x246}
	r := redirect(orig, 0x7f00_0000_8000, 0x7ffd_0000_0000)
	if r.Rip != 0x7f00_0000_8000 || r.Rsp != 0x7ffd_0000_0000 || int64(r.Orig_rax) != -1 {
		t.Errorf("rip %#x rsp %#x orig_rax %d", r.Rip, r.Rsp, int64(r.Orig_rax))
	}
	r.Rip, r.Rsp, r.Orig_rax = orig.Rip, orig.Rsp, orig.Orig_rax
	if r != orig {
		t.Errorf("other registers changed: %+v, was %+v", r, orig)
	}
}

// The block as asm/trampoline_amd64.s reads it: the header, each call's
// fields, the registers it pops (rax rbx rcx rdx rsi rdi rbp r8-r15
// rflags) with the restart applied, and the rip `ret 256` returns to, at
// the original rsp - 264.
func TestBuildBlock(t *testing.T) {
	const sp = 0x7ffd_1234_5678
	calls := []Call{
		{Fn: FnSyscall, Aux: 39},
		{Fn: 0x7f00_dead_beef, Args: [6]uint64{1, 2, 3, 4, 5, 6}, ArgFrom: [6]byte{0, 1, 0, 0, 0, 1}, Flags: AbortIfError | Always},
		{Fn: FnMemcpy, Args: [6]uint64{0x1000, 0x2000, 8}, Flags: Cleanup},
	}
	orig := ptrace.Regs{
		Rax: uint64(0xffff_ffff_ffff_fe00) /* -512 */, Orig_rax: 230,
		Rbx: 0xb, Rcx: 0xc, Rdx: 0xd, Rsi: 0x51, Rdi: 0xd1, Rbp: 0xb0,
		R8: 8, R9: 9, R10: 10, R11: 11, R12: 12, R13: 13, R14: 14, R15: 15,
		Eflags: 0x246, Rip: 0x7f00_0000_1234, Rsp: sp,
	}
	l := newLayout(sp, len(calls), 832)
	b := buildBlock(l, calls, orig, 34)
	if len(b) != l.size {
		t.Fatalf("block of %d bytes, layout says %d", len(b), l.size)
	}
	u64 := func(off uint64) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	if u64(0x08) != 3 || u64(0x10) != 0 || u64(0x18) != ^uint64(0) || u64(0x30) != 34 {
		t.Errorf("header: ncalls %d, done %d, aborted %#x, signal %d", u64(0x08), u64(0x10), u64(0x18), u64(0x30))
	}
	if l.base+u64(0x20) != l.xsave || l.base+u64(0x28) != l.regs {
		t.Errorf("offsets: xsave %#x (layout %#x), registers %#x (layout %#x)", l.base+u64(0x20), l.xsave, l.base+u64(0x28), l.regs)
	}
	for i, c := range calls {
		e := uint64(0x80 + 88*i)
		var args [6]uint64
		for j := range args {
			args[j] = u64(e + 8 + 8*uint64(j))
		}
		var from [6]byte
		copy(from[:], b[e+56:e+62])
		if u64(e) != c.Fn || args != c.Args || from != c.ArgFrom || u64(e+64) != c.Flags || u64(e+72) != 0 || u64(e+80) != c.Aux {
			t.Errorf("call %d: fn %#x args %v from %v flags %d result %d aux %d, want %+v",
				i, u64(e), args, from, u64(e+64), u64(e+72), u64(e+80), c)
		}
	}
	// XRSTOR needs the XSAVE header (64 bytes at +512) zero.
	for _, v := range b[l.xsave-l.base+512 : l.xsave-l.base+576] {
		if v != 0 {
			t.Fatal("the XSAVE header is not zero")
		}
	}
	want := []uint64{230 /* restarted */, 0xb, 0xc, 0xd, 0x51, 0xd1, 0xb0, 8, 9, 10, 11, 12, 13, 14, 15, 0x246}
	for i, w := range want {
		if got := u64(l.regs - l.base + 8*uint64(i)); got != w {
			t.Errorf("popped register %d: %#x, want %#x", i, got, w)
		}
	}
	if rip := u64(sp - 264 - l.base); rip != orig.Rip-2 {
		t.Errorf("resume rip %#x, want %#x (back over the syscall instruction)", rip, orig.Rip-2)
	}
	done, aborted, results := blockResults(b, len(calls))
	if done || aborted != -1 || len(results) != 3 || results[0]|results[1]|results[2] != 0 {
		t.Errorf("results of a fresh block: done %v, aborted %d, %v", done, aborted, results)
	}
}

// Which parked calls a call may run from: the blocking calls CPython makes
// with the GIL released; futex waits, not wakes, PI or requeue operations,
// and not on the runtime's static data (the GIL's); fcntl only waiting for
// a lock; never restart_syscall (Classify looks at where it came from).
func TestSafeSyscall(t *testing.T) {
	const (
		static0, static1 = 0x55_0000_1000, 0x55_0000_9000 // the interpreter's .data/.bss
		heap             = 0x55_1000_0000
	)
	inj := &Injector{tgt: &symbols.Target{Python: &symbols.Module{Writable: [][2]uint64{{static0, static1}}}}}
	for _, c := range []struct {
		name    string
		nr      int
		a0, a1  uint64
		want    bool
		comment string
	}{
		{"read", 0, 3, 0, true, ""},
		{"select", 23, 0, 0, true, "time.sleep before 3.11"},
		{"clock_nanosleep", 230, 1, 1, true, "time.sleep on 3.11+"},
		{"epoll_wait", 232, 4, 0, true, ""},
		{"wait4", 61, 100, 0, true, ""},
		{"accept4", 288, 3, 0, true, ""},
		{"getpid", 39, 0, 0, false, "not a blocking call"},
		{"mmap", 9, 0, 4096, false, ""},
		{"restart_syscall", 219, 0, 0, false, "which call it restarts is unknown"},
		{"fcntl F_SETLKW", 72, 3, 7, true, ""},
		{"fcntl F_OFD_SETLKW", 72, 3, 38, true, ""},
		{"fcntl F_SETLK", 72, 3, 6, false, "does not block"},
		{"fcntl F_GETFL", 72, 3, 3, false, ""},
		{"futex WAIT on the heap", 202, heap, 0, true, ""},
		{"futex WAIT|PRIVATE on the heap", 202, heap, 128, true, ""},
		{"futex WAIT_BITSET|PRIVATE on the heap", 202, heap, 9 | 128, true, ""},
		{"futex WAIT|PRIVATE|CLOCK_REALTIME", 202, heap, 256 | 128, true, ""},
		{"futex WAKE", 202, heap, 1, false, ""},
		{"futex LOCK_PI", 202, heap, 6, false, ""},
		{"futex WAIT_REQUEUE_PI", 202, heap, 11, false, ""},
		{"futex WAIT on static data", 202, static0 + 0x100, 128, false, "the GIL's"},
		{"futex WAIT at the start of static data", 202, static0, 0, false, ""},
		{"futex WAIT just past static data", 202, static1, 0, true, "the range's end is excluded"},
	} {
		if got := inj.safeSyscall(c.nr, c.a0, c.a1); got != c.want {
			t.Errorf("%s (%d, %#x, %#x): safe %v, want %v %s", c.name, c.nr, c.a0, c.a1, got, c.want, c.comment)
		}
	}
}
