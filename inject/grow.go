package inject

import (
	"bytes"
	"context"
	"time"

	"github.com/lptrace/lptrace/proc"
	"golang.org/x/sys/unix"
)

// growStack makes the main thread's stack reach far enough below its
// pointer for a context block: a thread parked at the deepest point its
// recursion ever reached (a program bouncing near its recursion limit,
// before 3.11 where Python calls nest on the C stack) has no mapped room
// there, and the kernel grows a stack only for the thread's own accesses,
// never for lptrace's writes. The thread runs the stack probe (see
// asm/trampoline_amd64.s), single-stepped, and is put back exactly as it
// was. Only the main thread's stack grows ([stack], checked by the
// caller); its limit was checked too. Reports whether it ran.
func (inj *Injector) growStack(th *Thread) bool {
	if probeStart == probeEnd {
		return false
	}
	if inj.tramp == 0 || inj.lock == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := inj.installTrampoline(ctx, th.TID)
		cancel()
		if err != nil {
			return false
		}
	}
	resume := resumeRegs(th.orig)
	at, ok := inj.freePadding(th.TID, int(probeEnd-probeStart+7)&^7)
	if !ok {
		return false
	}
	code, ok := probeImage(at, resume.PC())
	if !ok {
		return false
	}
	if err := inj.tr.PokeText(th.TID, at, code); err != nil {
		return false
	}
	defer inj.tr.PokeText(th.TID, at, make([]byte, len(code)))
	regs := resume
	regs.SetPC(at)
	setNoSyscall(&regs)
	if inj.tr.SetRegs(th.TID, regs) != nil {
		return false
	}
	done := false
	for step := 0; step < 8 && !done; step++ {
		if inj.tr.SingleStep(th.TID) != nil {
			break
		}
		st, err := inj.tr.Wait(th.TID, time.Second)
		if err != nil || st.Exited || st.Event != 0 {
			break
		}
		if st.Signal != int(unix.SIGTRAP) && !th.hold(st.Signal) {
			// A fault of the probe (the stack could not grow) or a signal
			// lptrace may not hold: the thread goes back as it was, and
			// the signal, if it is the program's, is sent again.
			if st.Signal != int(unix.SIGSEGV) && st.Signal != int(unix.SIGBUS) {
				th.held |= 1 << st.Signal
			}
			break
		}
		if r, err := inj.tr.GetRegs(th.TID); err == nil && r.PC() == resume.PC() {
			done = true
		}
	}
	// Back to the stop lptrace made (the system call interrupted, the
	// kernel's restart pending), whatever happened.
	inj.tr.SetRegs(th.TID, th.orig)
	if done && !inj.queries() {
		if maps, err := proc.ReadMaps(inj.pid); err == nil {
			inj.tgt.Maps, inj.mapsRead = maps, time.Now()
		}
	}
	return done
}

// freePadding finds n zero bytes in the code padding that holds the
// trampoline, apart from it, 16-byte aligned.
func (inj *Injector) freePadding(tid, n int) (uint64, bool) {
	m := inj.region
	if m == nil {
		return 0, false
	}
	pad := make([]byte, m.PadEnd-m.PadStart)
	if inj.readMem(tid, m.PadStart, pad) != nil {
		return 0, false
	}
	zero := make([]byte, n)
	trampEnd := inj.tramp + uint64(len(trampCode))
	for addr := (m.PadStart + 64 + 15) &^ 15; addr+uint64(n) <= m.PadEnd; addr += 16 {
		if addr+uint64(n) > inj.tramp-64 && addr < trampEnd+64 {
			continue // the trampoline, and a margin
		}
		if bytes.Equal(pad[addr-m.PadStart:addr-m.PadStart+uint64(n)], zero) {
			return addr, true
		}
	}
	return 0, false
}
