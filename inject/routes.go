package inject

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// tryDirect runs the code in a parked thread. The skip is not nil when the
// thread turned out unsuitable (no error: try another).
func (inj *Injector) tryDirect(ctx context.Context, p Parked, pl payload, deadline time.Time, started <-chan struct{}) (Route, *skip, error) {
	if inj.signal(p.TID) == 0 {
		// Told before stopping it: the hook's own timer thread is one.
		return Route{}, &skip{why: unusable(p.TID)}, nil
	}
	if err := inj.takeLock(ctx); err != nil {
		return Route{}, nil, err
	}
	th, err := inj.Attach(ctx, p.TID)
	if err != nil {
		inj.dropLock()
		return Route{}, nil, err
	}
	defer inj.finish(th)
	// Re-check once stopped: it may have woken up since /proc was read.
	stillParked := th.InCall && (inj.safeSyscall(th.Syscall, syscallArg(&th.orig, 0), syscallArg(&th.orig, 1)) ||
		(th.Syscall == sysRestartSyscall && p.Syscall == sysRestartSyscall))
	if !stillParked {
		return Route{}, &skip{why: fmt.Sprintf("thread %d left its blocking call", p.TID)}, nil
	}
	if why := inj.stackTooSmall(th, pl.stackNeed, 15); why != "" {
		return Route{}, &skip{why: why}, nil
	}
	py := inj.tgt.Python
	sym := inj.pySym

	size := pageRound(uint64(pl.size()))
	buf, err := inj.mmapBuffer(ctx, th, size)
	if err != nil {
		return Route{}, nil, err
	}
	if err := inj.writeMem(th.TID, buf, pl.image(buf)); err != nil {
		th.Run(ctx, []Call{munmapCall(buf, size, Always)})
		return Route{}, nil, err
	}
	// Is the thread free of the GIL? 3.4+: PyGILState_Check() == 0.
	// 2.7: its own thread state is not the current one.
	var gilCheck Call
	if py.Has("PyGILState_Check") {
		gilCheck = Call{Fn: sym("PyGILState_Check"), Flags: AbortIfNonzero}
	} else {
		gilCheck = Call{Fn: sym("PyGILState_GetThisThreadState"), Flags: AbortIfEqualMem, Aux: sym("_PyThreadState_Current")}
		if gilCheck.Fn == 0 || gilCheck.Aux == 0 {
			th.Run(ctx, []Call{munmapCall(buf, size, Always)})
			return Route{}, nil, errors.New("cannot tell whether a thread holds the GIL: PyGILState_Check and _PyThreadState_Current are missing")
		}
	}
	calls := []Call{
		{Fn: sym("Py_IsInitialized"), Flags: AbortIfZero},
		gilCheck,
		{Fn: sym("PyGILState_Ensure")},
	}
	// 2.7 runs a signal's Python handler at the first instruction of the
	// code when a signal came meanwhile (its check interval's counter is
	// 0): a Ctrl-C raised there, before the code's try, is printed on the
	// program's stderr. The counter put 100 instructions further, the
	// handler runs inside the code's try, or in the program's code after
	// it.
	if ticker := sym("_Py_Ticker"); ticker != 0 && inj.tgt.Version.Major == 2 {
		calls = append(calls, Call{Fn: FnAddInt32, Args: [6]uint64{ticker, 0, 100}})
	}
	// The code runs with the thread marked as tracing: the program's trace
	// and profile functions and sys.monitoring tools never see it.
	m := inj.tracingMark()
	calls, at := m.enterCalls(calls)
	var run int
	calls = inj.headroom().around(calls, Call{Fn: sym("PyRun_SimpleString"), Args: [6]uint64{buf}}, &run, at)
	calls = m.leaveCalls(calls, at)
	calls = append(calls,
		Call{Fn: sym("PyGILState_Release"), ArgFrom: [6]byte{3}},
		munmapCall(buf, size, Always))
	// Give up the call if the payload has not started by the deadline: the
	// thread is then waiting for a GIL that another thread keeps.
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-started:
		case <-callCtx.Done():
		case <-time.After(max(time.Until(deadline), 100*time.Millisecond)):
			select {
			case <-started:
			default:
				cancel()
			}
		}
	}()
	res, aborted, err := th.Run(callCtx, calls)
	if err != nil {
		if callCtx.Err() != nil && ctx.Err() == nil {
			return Route{}, nil, fmt.Errorf("%w: thread %d (parked in %s) waited for it in vain", ErrGILBusy, p.TID, SyscallName(th.Syscall))
		}
		return Route{}, nil, err
	}
	switch aborted {
	case -1:
		return Route{TID: p.TID, Syscall: th.Syscall, Raised: int32(res[run]) != 0, Delivered: th.delivered}, nil, nil
	case 0:
		return Route{}, &skip{"not initialized", skipNotInitialized}, nil
	default:
		return Route{}, &skip{why: fmt.Sprintf("thread %d holds the GIL while blocked in %s", p.TID, SyscallName(th.Syscall))}, nil
	}
}

func munmapCall(buf, size, flags uint64) Call {
	return Call{Fn: FnSyscall, Aux: sysMunmap, Args: [6]uint64{buf, size}, Flags: flags}
}

// tryPending queues the code with Py_AddPendingCall from thread tid. The
// code goes into its own mapping with a small entry routine that runs it
// and then unmaps the mapping, so nothing is left once it ran.
func (inj *Injector) tryPending(ctx context.Context, tid int, pl payload) (Route, *skip, error) {
	if inj.tgt.Libc == nil {
		return Route{}, nil, errors.New("no C library found for the pending-call route")
	}
	munmap, err := inj.tgt.Libc.Lookup("munmap")
	if err != nil || munmap.IFunc {
		return Route{}, nil, fmt.Errorf("munmap not usable in %s", inj.tgt.Libc.Path)
	}
	if inj.signal(tid) == 0 {
		return Route{}, &skip{why: unusable(tid)}, nil
	}
	if err := inj.takeLock(ctx); err != nil {
		return Route{}, nil, err
	}
	th, err := inj.Attach(ctx, tid)
	if err != nil {
		inj.dropLock()
		return Route{}, nil, err
	}
	defer inj.finish(th)
	// Interrupted at an arbitrary instruction: only outside of CPython's
	// pending-call and locking code, so that the lock taken by
	// Py_AddPendingCall cannot be held by this very thread. Elsewhere a
	// moment later, as often as it takes (a few times at most, except in a
	// stripped interpreter, which names few of its functions).
	for i := 0; !th.InCall && inj.inPendingMachinery(th.TID, th.PC()); i++ {
		if i == restops {
			return Route{}, inj.stoppedInLocking(tid), nil
		}
		inj.restops++
		if err := th.Restop(restopPause); err != nil {
			return Route{}, nil, err
		}
	}
	if why := inj.stackTooSmall(th, pendingStackNeed, 4); why != "" {
		return Route{}, &skip{why: why}, nil
	}
	sym := inj.pySym
	size := pageRound(uint64(pendingCodeOffset + pl.size()))
	buf, err := inj.mmapBuffer(ctx, th, size)
	if err != nil {
		return Route{}, nil, err
	}
	img := append(pentryImage(buf, size, sym("PyRun_SimpleString"), munmap.Addr, inj.tracingMark(), inj.headroom()), pl.image(buf+pendingCodeOffset)...)
	if err := inj.writeMem(th.TID, buf, img); err != nil {
		th.Run(ctx, []Call{munmapCall(buf, size, Always)})
		return Route{}, nil, err
	}
	calls := []Call{
		{Fn: sym("Py_IsInitialized"), Flags: AbortIfZero},
		{Fn: FnSyscall, Aux: sysMprotect, Args: [6]uint64{buf, size, protRead | protExec}, Flags: AbortIfError},
		{Fn: sym("Py_AddPendingCall"), Args: [6]uint64{buf, buf}, Flags: AbortIfNonzero},
		munmapCall(buf, size, Cleanup),
	}
	callCtx, cancel := context.WithTimeout(ctx, quickCall)
	defer cancel()
	res, aborted, err := th.Run(callCtx, calls)
	if err != nil {
		return Route{}, nil, err
	}
	switch aborted {
	case -1:
		sc, where := -1, ""
		if th.InCall {
			sc = th.Syscall
		} else {
			where = inj.Where(th.PC())
		}
		return Route{Pending: true, TID: tid, Syscall: sc, Where: where}, nil, nil
	case 0:
		return Route{}, &skip{"not initialized", skipNotInitialized}, nil
	case 1:
		return Route{}, nil, fmt.Errorf("the target may not map executable memory (mprotect: errno %d)", -int64(res[1]))
	default:
		return Route{}, &skip{why: "the interpreter's pending-call queue is full"}, nil
	}
}

// stoppedInLocking is tryPending's reason when the running thread was
// stopped, again and again, where it might hold the pending-call lock, or
// in code lptrace cannot name (a stripped interpreter's static functions:
// 3.14+'s opcode handlers in Debian's build are most of the hot loop).
// runPython then tries again at once, without backing off, when that
// thread is the main one.
func (inj *Injector) stoppedInLocking(tid int) *skip {
	kind := skipOther
	if tid == inj.pid {
		kind = skipInLocking
	}
	return &skip{fmt.Sprintf("thread %d was stopped inside locking code", tid), kind}
}

// finish puts back the trampoline's bytes and releases the thread.
func (inj *Injector) finish(th *Thread) {
	inj.Restore(th)
	th.Release()
}

// stackNeed is the stack a direct call of a payload needs below the
// thread's pointer: 3.14's parser wants more than 64 KiB left even for a
// small source, and stops with a MemoryError where it lacks it.
func (inj *Injector) stackNeed(small bool) uint64 {
	if small && !inj.tgt.Version.AtLeast(3, 14) {
		return smallStackNeed
	}
	return directStackNeed
}

// stackTooSmall says why th's stack cannot take a block of ncalls calls and
// need more bytes of growth below it ("" when it can).
func (inj *Injector) stackTooSmall(th *Thread, need uint64, ncalls int) string {
	if room := inj.stackRoom(th.SP()); room < need {
		return fmt.Sprintf("thread %d has only %d KiB of stack left", th.TID, room>>10)
	}
	l := newLayout(th.SP(), ncalls, inj.xsave)
	if !inj.mapped(l.base, uint64(l.size)) {
		// The main thread at its deepest yet: it grows its stack itself.
		if m, ok := inj.mappingAt(th.SP() - 1); !ok || m.Path != "[stack]" || !inj.growStack(th) || !inj.mapped(l.base, uint64(l.size)) {
			return fmt.Sprintf("thread %d's stack is not mapped below its pointer", th.TID)
		}
	}
	return ""
}
