// Running calls in a thread: the trampoline, its installation and its
// removal.

package inject

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
)

// Run makes the calls in the thread and returns their results and the index
// of the call that aborted the sequence (-1 when none did). The thread is
// stopped again afterwards, its registers untouched.
func (th *Thread) Run(ctx context.Context, calls []Call) ([]uint64, int, error) {
	inj := th.inj
	if !Supported {
		return nil, -1, ErrUnsupportedArch
	}
	if inj.signalNow(th.TID) == 0 {
		return nil, -1, fmt.Errorf("%w: %s", ErrUnusableThread, unusable(th.TID))
	}
	if err := inj.installTrampoline(ctx, th.TID); err != nil {
		return nil, -1, err
	}
	if !th.vectorsRead {
		th.vectors, th.vectorsRead = inj.saveVectors(th.TID, th.InCall), true
	}
	l := newLayout(th.orig.SP(), len(calls), inj.xsave)
	block := buildBlock(l, calls, th.orig, inj.signal(th.TID))
	if err := addVectors(block, l, th.vectors); err != nil {
		return nil, -1, fmt.Errorf("thread %d: %w", th.TID, err)
	}
	if err := inj.writeMem(th.TID, l.base, block); err != nil {
		return nil, -1, fmt.Errorf("write the call block on thread %d's stack: %w", th.TID, err)
	}
	if err := inj.tr.SetRegs(th.TID, redirect(th.orig, inj.tramp, l.base)); err != nil {
		return nil, -1, err
	}
	if err := inj.tr.Cont(th.TID, 0); err != nil {
		return nil, -1, err
	}
	stopAt := inj.tramp + trampStopped
	poll := 50 * time.Millisecond
	interrupted := false
	for {
		st, err := inj.tr.Wait(th.TID, poll)
		if err == ptrace.ErrTimeout && inj.lostThread(th.TID) {
			th.detached = true
			return nil, -1, inj.collectExec()
		}
		if err == ptrace.ErrTimeout {
			if th.held != 0 && !time.Now().Before(th.holdUntil) {
				th.resend() // a long call: the program waited long enough
			}
			if ctx.Err() != nil && !interrupted {
				// Stop waiting: interrupt the thread; it finishes the calls on
				// its own after detach.
				inj.tr.Interrupt(th.TID)
				interrupted = true
				continue
			}
			// The signal may be blocked in that thread: the done flag says
			// the trampoline has finished and restored the thread by itself.
			var done [8]byte
			if inj.readMem(th.TID, l.base+offDone, done[:]) == nil && done[0] == 1 && !interrupted {
				inj.tr.Interrupt(th.TID)
				interrupted = true
			}
			continue
		}
		if err != nil {
			return nil, -1, err
		}
		if st.Exited {
			return nil, -1, ErrExited
		}
		if st.Event == ptrace.EventExec {
			// The code run by the call exec'd (a signal handler of the
			// program may run inside it): the trampoline and the call are
			// gone with the old program.
			th.detached = true
			// Held signals are dropped: the new program has default
			// actions, and would die of what the old one handled.
			th.held = 0
			return nil, -1, inj.lostProgram(th.TID)
		}
		if st.Event == 0 && st.Signal == inj.signal(th.TID) {
			regs, err := inj.tr.GetRegs(th.TID)
			if err != nil {
				return nil, -1, err
			}
			if regs.PC() == stopAt {
				buf := make([]byte, l.size)
				if err := inj.readMem(th.TID, l.base, buf); err != nil {
					return nil, -1, err
				}
				_, aborted, results := blockResults(buf, len(calls))
				// Back to the original registers; the caller may run more
				// calls or Release.
				if err := inj.tr.SetRegs(th.TID, th.orig); err != nil {
					return nil, -1, err
				}
				if err := inj.restoreVectors(th); err != nil {
					return nil, -1, err
				}
				if interrupted {
					// The interrupt is still pending: consume its stop.
					inj.consumeInterrupt(th.TID)
				}
				return results, aborted, nil
			}
		}
		switch {
		case st.GroupStop():
			// Job control stopped the process mid-call. Leave it stopped; the
			// trampoline completes by itself when the process continues.
			inj.letGo(th)
			return nil, -1, ErrTargetStopped
		case st.Event != 0 && interrupted:
			// Our interrupt: detach mid-call; the trampoline finishes alone.
			inj.letGo(th)
			if ctx.Err() != nil {
				return nil, -1, fmt.Errorf("detached from thread %d while its call runs on: %w", th.TID, ctx.Err())
			}
			return nil, -1, fmt.Errorf("thread %d finished without stopping (signal %d blocked?)", th.TID, inj.signal(th.TID))
		case st.Event != 0:
			inj.tr.Cont(th.TID, 0)
		case th.hold(st.Signal):
			inj.tr.Cont(th.TID, 0)
		default:
			// Any other signal belongs to the target: deliver it.
			if st.Signal > 0 && st.Signal < 64 {
				th.delivered |= 1 << st.Signal
			}
			inj.tr.Cont(th.TID, st.Signal)
		}
	}
}

// installTrampoline writes the trampoline into code padding that nothing
// executes: after libc's code, else after the Python runtime's or the
// dynamic loader's. It takes the last 64-byte-aligned slot that is all zero
// (or already holds this very trampoline, left by another lptrace), so a
// different trampoline left by another lptrace version is never disturbed.
func (inj *Injector) installTrampoline(ctx context.Context, tid int) error {
	if err := inj.takeLock(ctx); err != nil {
		return err
	}
	size := (len(trampCode) + 7) &^ 7
	code := make([]byte, size)
	copy(code, trampCode)
	if inj.tramp != 0 {
		// Still there? Another lptrace may have put back the bytes of a
		// trampoline it found before this one did.
		cur := make([]byte, size)
		if err := inj.readMem(tid, inj.tramp, cur); err != nil {
			return err
		}
		if string(cur) == string(code) {
			return nil
		}
		inj.tramp, inj.wrote = 0, false
	}
	var tried []string
	for _, m := range []*symbols.Module{inj.tgt.Libc, inj.tgt.Python, inj.tgt.Loader} {
		if m == nil || m.PadStart == 0 {
			continue
		}
		if m.PadEnd-m.PadStart < uint64(size)+64 {
			tried = append(tried, m.Path+" (no room)")
			continue
		}
		pad := make([]byte, m.PadEnd-m.PadStart)
		if err := inj.readMem(tid, m.PadStart, pad); err != nil {
			return err
		}
		// Keep 64 bytes clear of the end of the real code.
		for addr := (m.PadEnd - uint64(size)) &^ 63; addr >= m.PadStart+64; addr -= 64 {
			cur := pad[addr-m.PadStart : addr-m.PadStart+uint64(size)]
			switch {
			case string(cur) == string(code):
				// Left by another lptrace (running or killed): use it, and
				// leave it in place afterwards.
			case isZero(cur):
				if err := inj.tr.PokeText(tid, addr, code); err != nil {
					return fmt.Errorf("write the trampoline into %s: %w", m.Path, err)
				}
				inj.wrote = true
			default:
				continue
			}
			inj.tramp, inj.found, inj.region = addr, append([]byte(nil), cur...), m
			return nil
		}
		tried = append(tried, m.Path+" (padding in use)")
	}
	return fmt.Errorf("no unused code padding for the trampoline: %s", strings.Join(tried, ", "))
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Restore puts back the bytes under the trampoline, through a thread that
// is stopped by lptrace. It leaves them when another tracer holds a thread
// of the process, since that may be another lptrace in the middle of a call
// (one of a version without the lock). Either way the lock goes.
func (inj *Injector) Restore(th *Thread) error {
	defer inj.dropLock()
	if !inj.wrote || inj.inFlight || th.detached || inj.execd {
		return nil
	}
	tids, err := proc.Threads(inj.pid)
	if err != nil {
		return err
	}
	// TracerPid names the tracer *thread*: any thread of lptrace is us.
	var ours []int
	isOurs := func(tid int) bool {
		if ours == nil {
			ours, _ = proc.Threads(os.Getpid())
		}
		for _, t := range ours {
			if t == tid {
				return true
			}
		}
		return false
	}
	for _, tid := range tids {
		if tid == th.TID {
			continue // held by lptrace right now
		}
		if st, err := proc.ReadTaskStatus(inj.pid, tid); err == nil && st.TracerPid != 0 && !isOurs(st.TracerPid) {
			return nil
		}
	}
	if err := inj.tr.PokeText(th.TID, inj.tramp, inj.found); err != nil {
		return err
	}
	inj.wrote, inj.tramp = false, 0
	return nil
}

// putCalls writes the calls into a call block (the layout of its calls is
// the same on both architectures).
func putCalls(b []byte, calls []Call) {
	le := binary.LittleEndian
	for i, c := range calls {
		e := b[offCalls+callSize*i:]
		le.PutUint64(e[0:], c.Fn)
		for j, a := range c.Args {
			le.PutUint64(e[8+8*j:], a)
		}
		copy(e[56:62], c.ArgFrom[:])
		le.PutUint64(e[64:], c.Flags)
		le.PutUint64(e[80:], c.Aux)
	}
}

// blockResults reads a call block after its run: whether it finished,
// which call aborted (-1: none) and each call's result (the block's layout
// is the same on both architectures).
func blockResults(b []byte, n int) (done bool, aborted int, results []uint64) {
	le := binary.LittleEndian
	done = le.Uint64(b[offDone:]) == 1
	aborted = int(int64(le.Uint64(b[offAborted:])))
	results = make([]uint64, n)
	for i := range results {
		results[i] = le.Uint64(b[offCalls+callSize*i+72:])
	}
	return
}
