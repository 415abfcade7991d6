package inject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"golang.org/x/sys/unix"
)

// Route says how Python code reached the interpreter.
type Route struct {
	Pending bool // queued with Py_AddPendingCall, run by the main thread
	TID     int  // the thread that ran (direct) or queued (pending) it
	Syscall int  // where that thread was parked, -1 if running
	// Raised: on the direct route, an exception escaped the code (it was
	// printed on the program's stderr): only a signal handler of the
	// program can raise before the code's own try. Nothing of it ran.
	Raised bool
	// Delivered: on the direct route, the program's signals delivered to
	// the thread while the code ran (bit n: signal n).
	Delivered uint64
	// Where the queueing thread was, when it was running: "libblas.so.3
	// (dgemm_)" (a pending call runs once the main thread is back in the
	// interpreter).
	Where string
}

// Saw tells whether sig reached the thread while the code ran (direct
// route only).
func (r Route) Saw(sig unix.Signal) bool { return r.Delivered&(1<<uint(sig)) != 0 }

func (r Route) String() string {
	where := "running"
	if r.Syscall >= 0 {
		where = "parked in " + SyscallName(r.Syscall)
	} else if r.Where != "" {
		where = "running in " + r.Where
	}
	if r.Pending {
		return fmt.Sprintf("queued as a pending call from thread %d (%s)", r.TID, where)
	}
	return fmt.Sprintf("run by thread %d (%s)", r.TID, where)
}

// Minimum stack left below a thread's stack pointer before Python code may
// run on it; a thread started with a smaller threading.stack_size() is
// skipped. musl's threads have 128 KiB in all: what the payloads need is
// measured in docs/design.md ("Stack").
const (
	directStackNeed  = 112 << 10
	smallStackNeed   = 64 << 10 // before 3.14: a small payload
	pendingStackNeed = 32 << 10
)

const (
	protRead, protWrite, protExec = 1, 2, 4
	mapPrivate, mapAnonymous      = 0x02, 0x20
)

// ErrGILBusy means the code reached a parked thread, but that thread could
// not take the GIL before the timeout: another thread holds it, typically
// stuck in C code. lptrace lets go of the thread, which resumes once the GIL
// is free; the payload finds lptrace gone and runs nothing.
var ErrGILBusy = errors.New("could not take the GIL")

// Options tune RunPython.
type Options struct {
	// Timeout bounds the wait for a safe point.
	Timeout time.Duration
	// Started is closed by the caller when the payload reports that it
	// runs: a direct call that has not started by the timeout is abandoned
	// (ErrGILBusy).
	Started <-chan struct{}
	// TID, when set, is the only thread allowed to run the code (for the
	// main thread, a pending call counts).
	TID int
	// Data, when set, goes into the code's mapping after it, and the
	// address it gets there replaces the last DataAt (a placeholder of 18
	// bytes, "0x" and 16 hex digits) in the code: binary data for the code
	// to read from its own process's memory while it runs, cheaper than
	// any literal Python would parse. (The last: text given by the user,
	// such as a filter, may come before it.)
	Data   []byte
	DataAt string
	// Small: the code compiles little before it runs the user's (exec,
	// the stack dump, pdb, not the tracing hook), so a thread with less
	// stack left can run it.
	Small bool
}

// RunPython runs src (Python source, as for PyRun_SimpleString) in the
// target at a safe point, trying until the timeout. For a pending call it
// returns once the code is queued; the code itself reports when it runs.
func (inj *Injector) RunPython(ctx context.Context, src []byte, opt Options) (Route, error) {
	route, err := inj.runPython(ctx, src, opt)
	if errors.Is(err, ErrExited) || ptrace.IsPermission(err) {
		// The thread lptrace held was killed, or ptrace was refused: both
		// happen while the process execs or exits (a process in the middle
		// of either cannot be traced), and its end or its new program may
		// take a moment to show.
		for i := 0; i < 20 && !inj.Execd() && proc.Alive(inj.pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		switch {
		case !proc.Alive(inj.pid):
			err = ErrExited
		case inj.Execd():
			err = ErrExec
		}
	}
	return route, err
}

// Execd reports whether the process replaced its program since New.
func (inj *Injector) Execd() bool {
	if !inj.execd && inj.program != "" {
		if id := proc.ProgramID(inj.pid); id != "" && id != inj.program {
			inj.execd = true
		}
	}
	return inj.execd
}

func (inj *Injector) runPython(ctx context.Context, src []byte, opt Options) (Route, error) {
	// The program's signals that arrive while lptrace holds a thread wait
	// until it is back in its own code, for 250 ms at most (code that runs
	// longer gets them): their Python handlers must not run inside
	// lptrace's code.
	inj.holdFor = 250 * time.Millisecond
	defer func() { inj.holdFor = 0 }()
	deadline := time.Now().Add(opt.Timeout)
	code := append(append([]byte(nil), src...), 0)
	pl, err := newPayload(code, opt.Data, opt.DataAt)
	pl.stackNeed = inj.stackNeed(opt.Small)
	if err != nil {
		return Route{}, err
	}
	var lastWhy string
	var lastKind skipKind // (of the last attempt: skipOther for errors)
	quick := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return Route{}, err
		}
		if !proc.Alive(inj.pid) {
			return Route{}, ErrExited
		}
		if inj.Execd() {
			return Route{}, ErrExec
		}
		parked, running, err := inj.Classify()
		if err != nil {
			return Route{}, err
		}
		if opt.TID != 0 {
			if !inj.hasThread(opt.TID) {
				return Route{}, fmt.Errorf("process %d has no thread %d", inj.pid, opt.TID)
			}
			if opt.TID != inj.pid && inj.signal(opt.TID) == 0 {
				// Not worth waiting for (the hook's own timer thread).
				return Route{}, fmt.Errorf("%w: %s", ErrUnusableThread, unusable(opt.TID))
			}
			direct := parked[:0:0]
			for _, p := range parked {
				if p.TID == opt.TID {
					direct = append(direct, p)
				}
			}
			if opt.TID != inj.pid && len(direct) == 0 {
				lastWhy, lastKind = fmt.Sprintf("thread %d is not parked in a blocking call", opt.TID), skipOther
				parked, running = nil, nil
			} else if opt.TID != inj.pid {
				parked, running = direct, nil
			} else {
				// The main thread: directly when parked, else as a pending
				// call queued from any parked thread or from itself.
				parked = append(direct, without(parked, opt.TID)...)
			}
		}
		// 1. Direct, in a parked thread, the main thread first.
		var issuers []Parked
		for _, p := range parked {
			if opt.TID != 0 && p.TID != opt.TID {
				issuers = append(issuers, p)
				continue
			}
			var route Route
			var sk *skip
			inj.tr.Exec(func() { route, sk, err = inj.tryDirect(ctx, p, pl, deadline, opt.Started) })
			if errors.Is(err, ErrGILBusy) {
				return Route{}, err
			}
			if err == nil && sk == nil {
				return route, nil
			}
			if err != nil {
				if final(ctx, err) && !inj.threadGone(p.TID, err) {
					return Route{}, err
				}
				lastWhy, lastKind = err.Error(), skipOther
				continue
			}
			lastWhy, lastKind = sk.why, sk.kind
			if sk.kind != skipNotInitialized {
				issuers = append(issuers, p)
			}
		}
		// 2. Pending call, queued from a parked thread, else from the
		// running main thread.
		mainRunning := false
		for _, tid := range running {
			if tid == inj.pid {
				mainRunning = true
			}
		}
		// A pending call runs in the main thread only.
		pendingOK := opt.TID == 0 || opt.TID == inj.pid
		if pendingOK && (mainRunning || len(issuers) > 0) {
			queuers := make([]int, 0, len(issuers)+1)
			for _, p := range issuers {
				queuers = append(queuers, p.TID)
			}
			if mainRunning {
				queuers = append(queuers, inj.pid)
			}
			for _, tid := range queuers {
				var route Route
				var sk *skip
				inj.tr.Exec(func() { route, sk, err = inj.tryPending(ctx, tid, pl) })
				switch {
				case err == nil && sk == nil:
					return route, nil
				case err == nil:
					lastWhy, lastKind = sk.why, sk.kind
				case final(ctx, err) && !inj.threadGone(tid, err):
					return Route{}, err
				default:
					lastWhy, lastKind = err.Error(), skipOther
				}
			}
		} else if lastWhy == "" && pendingOK {
			lastWhy, lastKind = "every thread is waiting for the GIL or blocked outside Python", skipOther
		}
		if time.Now().After(deadline) {
			return Route{}, fmt.Errorf("%w within %v: %s", ErrNoSafePoint, opt.Timeout, lastWhy)
		}
		if lastKind == skipInLocking && quick < quickRetries {
			quick++
			attempt--
			nap(100 * time.Microsecond)
			continue
		}
		sleep := time.Millisecond << min(attempt, 5)
		select {
		case <-ctx.Done():
		case <-time.After(sleep):
		}
	}
}

// threadGone tells whether err only means that thread tid, not the main
// thread, exited while lptrace was getting hold of it (a thread on its way
// out, such as a previous session's timer thread): the others remain.
func (inj *Injector) threadGone(tid int, err error) bool {
	return errors.Is(err, ErrExited) && tid != inj.pid && proc.Alive(inj.pid) && !inj.Execd()
}

// final tells whether an attempt's error ends RunPython, rather than send
// it on to another thread: the process is stopped, gone or replaced, the
// kernel refuses ptrace, or the caller gave up.
//
// A thread held by another lptrace is not: that one lets go of it once its
// call is done; meanwhile another thread may serve, else the loop tries
// again until the timeout. A thread traced by another tool is.
func final(ctx context.Context, err error) bool {
	var te *TracedError
	if errors.As(err, &te) {
		return !te.Lptrace || ctx.Err() != nil
	}
	return errors.Is(err, ErrTargetStopped) || errors.Is(err, ErrExited) || errors.Is(err, ErrExec) ||
		ptrace.IsPermission(err) || ctx.Err() != nil
}

// quickCall bounds calls that never wait for anything (system calls,
// Py_AddPendingCall): past it lptrace lets go of the thread rather than hang.
const quickCall = 3 * time.Second

// mmapBuffer maps size bytes of fresh memory in the target through th.
func (inj *Injector) mmapBuffer(ctx context.Context, th *Thread, size uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, quickCall)
	defer cancel()
	res, aborted, err := th.Run(ctx, []Call{{
		Fn: FnSyscall, Aux: sysMmap, Flags: AbortIfError,
		Args: [6]uint64{0, size, protRead | protWrite, mapPrivate | mapAnonymous, ^uint64(0), 0},
	}})
	if err != nil {
		return 0, err
	}
	if aborted >= 0 {
		return 0, fmt.Errorf("mmap in the target failed: errno %d", -int64(res[0]))
	}
	return res[0], nil
}

func pageRound(n uint64) uint64 { return (n + 4095) &^ 4095 }

// payload is RunPython's code (NUL-terminated) and data, and where in the
// code the data's address goes (at >= 0).
type payload struct {
	code, data []byte
	at         int
	stackNeed  uint64 // below the thread's stack pointer (see stackNeed)
}

// newPayload finds where the data's address goes: the last dataAt.
func newPayload(code, data []byte, dataAt string) (payload, error) {
	p := payload{code: code, data: data}
	if data != nil {
		p.at = bytes.LastIndex(code, []byte(dataAt))
		if len(dataAt) != 18 || p.at < 0 {
			return payload{}, fmt.Errorf("the code has no placeholder %q for its data's address", dataAt)
		}
	}
	return p, nil
}

// image returns the code followed by the data, for a mapping where the
// code starts at address codeAddr: the data's address written in.
func (p payload) image(codeAddr uint64) []byte {
	if p.data == nil {
		return p.code
	}
	off := p.dataOff()
	img := make([]byte, off+len(p.data))
	copy(img, p.code)
	copy(img[p.at:], fmt.Sprintf("0x%016x", codeAddr+uint64(off)))
	copy(img[off:], p.data)
	return img
}

// dataOff is where the data starts: after the code, 8-byte aligned.
func (p payload) dataOff() int { return (len(p.code) + 7) &^ 7 }

func (p payload) size() int { return p.dataOff() + len(p.data) }

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

// skip is why a route could not serve this time, not an error: another
// route, or the next attempt, may.
type skip struct {
	why  string
	kind skipKind
}

type skipKind int

const (
	skipOther          skipKind = iota
	skipNotInitialized          // the interpreter is not (or no longer) initialized: no use queueing from there
	skipInLocking               // the main thread kept stopping where it may hold the pending-call lock
)

// restops bounds how often tryPending lets the thread run on and stops it
// again; quickRetries how often runPython then tries again at once. Each
// stop costs the thread about 0.1 ms.
const (
	restops      = 30
	quickRetries = 10
)

// restopPause is how long the thread runs between two stops: long enough
// to leave a short locking function, short enough that a stripped
// interpreter (one usable stop in eight or ten) is caught in a millisecond
// or so (each stop costs 0.1 ms more).
const restopPause = 10 * time.Microsecond

// finish puts back the trampoline's bytes and releases the thread.
func (inj *Injector) finish(th *Thread) {
	inj.Restore(th)
	th.Release()
}

func without(ps []Parked, tid int) []Parked {
	var out []Parked
	for _, p := range ps {
		if p.TID != tid {
			out = append(out, p)
		}
	}
	return out
}

func (inj *Injector) hasThread(tid int) bool {
	tids, _ := proc.Threads(inj.pid)
	for _, t := range tids {
		if t == tid {
			return true
		}
	}
	return false
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

// pySym is the address of a symbol of the Python runtime (0 if missing;
// the required ones are checked when the runtime is found).
func (inj *Injector) pySym(name string) uint64 {
	s, _ := inj.tgt.Python.Lookup(name)
	return s.Addr
}

// Headroom is how many frames the recursion limit is raised by while
// lptrace's code runs in the program: the code runs at whatever depth the
// thread was, and in a program recursing near its limit it had no frame
// left (PyRun_SimpleString's own compilation of the statement failed, and
// the interpreter printed that on the program's stderr; a tracing hook's
// callback added a RecursionError to the program). Raised by the calls
// around PyRun_SimpleString, and lowered by as much afterwards: the code
// keeps the limit the program set meanwhile, and a tracing session keeps
// its headroom by raising the limit once more (hook/trace.py).
//
// Before 3.11 the headroom is the thread's own: its depth counter goes
// down by as much around the code, and back up. There a thread deeper
// than the limit + 50 after a RecursionError aborts the program ("Cannot
// recover from stack overflow", 3.6-3.8): another thread that recursed past
// the raised limit while the code ran would have been deeper than that
// once the limit came down.
const Headroom = 100

// headroom is the C API that raises and lowers the limit, or where the
// thread's depth counter is (depthAt: its offset in the thread state,
// before 3.11).
type headroom struct{ get, set, depthAt uint64 }

func (inj *Injector) headroom() headroom {
	v := inj.tgt.Version
	switch {
	case v.Major == 2 && v.Minor == 7:
		return headroom{depthAt: 24} // PyThreadState.recursion_depth, 64-bit
	case v.Major == 3 && v.Minor < 11:
		return headroom{depthAt: 32}
	}
	return headroom{get: inj.pySym("Py_GetRecursionLimit"), set: inj.pySym("Py_SetRecursionLimit")}
}

// around appends run with Headroom around it, and sets *at to run's
// index; tstate is the call whose result is the thread's state (1-based:
// see tracingMark.enterCalls; 0 if none).
func (h headroom) around(calls []Call, run Call, at *int, tstate byte) []Call {
	if h.depthAt != 0 {
		if tstate == 0 {
			*at = len(calls)
			return append(calls, run)
		}
		calls = append(calls, Call{Fn: FnAddInt32, ArgFrom: [6]byte{tstate}, Args: [6]uint64{0, h.depthAt, uint64(uint32(neg32(Headroom)))}})
		*at = len(calls)
		return append(calls, run, Call{Fn: FnAddInt32, ArgFrom: [6]byte{tstate}, Args: [6]uint64{0, h.depthAt, Headroom}})
	}
	if h.get == 0 || h.set == 0 {
		*at = len(calls)
		return append(calls, run)
	}
	k := byte(len(calls))
	calls = append(calls,
		Call{Fn: h.get},
		Call{Fn: FnSub, ArgFrom: [6]byte{k + 1}, Args: [6]uint64{0, uint64(neg(Headroom))}},
		Call{Fn: h.set, ArgFrom: [6]byte{k + 2}})
	*at = len(calls)
	calls = append(calls, run)
	k = byte(len(calls))
	return append(calls,
		Call{Fn: h.get},
		Call{Fn: FnSub, ArgFrom: [6]byte{k + 1}, Args: [6]uint64{0, Headroom}},
		Call{Fn: h.set, ArgFrom: [6]byte{k + 2}})
}

func neg(n int64) int64 { return -n }

func neg32(n int32) int32 { return -n }

// tracingMark says how injected code marks its thread as tracing while it
// runs (tstate->tracing + 1, as CPython does around a trace or profile
// function): the interpreter then calls no trace or profile function and no
// sys.monitoring callback for it, and the program's tools never see
// lptrace's code. 3.11+: PyThreadState_EnterTracing/LeaveTracing (3.11 also
// recomputes the frame's use_tracing on leaving, which a bare decrement
// would leave off). Before: the int32 at its offset in PyThreadState, the
// same in every build of a version (Cython's profiling reads it). The zero
// value marks nothing.
type tracingMark struct{ get, enter, leave, off uint64 }

func (inj *Injector) tracingMark() tracingMark {
	v := inj.tgt.Version
	get := inj.pySym("PyThreadState_Get")
	if get == 0 {
		return tracingMark{}
	}
	if v.AtLeast(3, 11) {
		enter, leave := inj.pySym("PyThreadState_EnterTracing"), inj.pySym("PyThreadState_LeaveTracing")
		if enter == 0 || leave == 0 {
			return tracingMark{}
		}
		return tracingMark{get: get, enter: enter, leave: leave}
	}
	// offsetof(PyThreadState, tracing) on 64-bit Linux.
	var off uint64
	switch {
	case v.Major == 2 && v.Minor == 7:
		off = 28
	case v.Major == 3 && v.Minor == 6:
		off = 40
	case v.Major == 3 && v.Minor >= 7:
		off = 44 // 3.7-3.10
	default:
		return tracingMark{}
	}
	return tracingMark{get: get, off: off}
}

// enterCalls appends the calls that mark the thread (the GIL held), and
// tells which call's result is its thread state (1-based, 0 if none).
func (m tracingMark) enterCalls(calls []Call) ([]Call, byte) {
	if m.get == 0 {
		return calls, 0
	}
	calls = append(calls, Call{Fn: m.get})
	at := byte(len(calls))
	if m.enter != 0 {
		return append(calls, Call{Fn: m.enter, ArgFrom: [6]byte{at}}), at
	}
	return append(calls, Call{Fn: FnAddInt32, Args: [6]uint64{0, m.off, 1}, ArgFrom: [6]byte{at}}), at
}

// leaveCalls appends the calls that unmark it.
func (m tracingMark) leaveCalls(calls []Call, at byte) []Call {
	if at == 0 {
		return calls
	}
	if m.leave != 0 {
		return append(calls, Call{Fn: m.leave, ArgFrom: [6]byte{at}})
	}
	return append(calls, Call{Fn: FnAddInt32, Args: [6]uint64{0, m.off, 0xffffffff}, ArgFrom: [6]byte{at}})
}
