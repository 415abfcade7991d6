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

// pySym is the address of a symbol of the Python runtime (0 if missing;
// the required ones are checked when the runtime is found).
func (inj *Injector) pySym(name string) uint64 {
	s, _ := inj.tgt.Python.Lookup(name)
	return s.Addr
}
