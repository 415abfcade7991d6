// Package inject runs code inside a thread of a live process, and runs
// Python code inside a live CPython interpreter, at safe points only.
//
// A call works like this: lptrace seizes one thread and stops it, writes a
// context block below its stack pointer (the calls to make, the registers to
// restore, room for the FP/vector state) and points rip at a trampoline
// placed in the unused padding after libc's code. The trampoline saves the
// FP/vector state, makes the calls, restores that state and raises a signal
// at itself; lptrace collects the results at that stop and puts the thread's
// registers back. If lptrace dies at any instant, the signal is one ignored
// by default and the trampoline restores the thread by itself: the target
// never depends on lptrace surviving.
//
// Where Python code runs (the safe points):
//
//   - Direct: in a thread parked in a blocking system call (sleep, accept,
//     poll, a lock wait...). CPython releases the GIL around such calls, so
//     PyGILState_Ensure there takes the GIL like any thread starting to run
//     Python. A call first asks PyGILState_Check (3.x) or compares the
//     thread's state with _PyThreadState_Current (2.7) and gives up if the
//     thread holds the GIL after all (a C extension blocking with it), since
//     running Python there would re-enter whatever that thread was doing.
//     Threads waiting for the GIL itself (a condition-variable futex wait)
//     are never used: re-entering the GIL from inside its own wait deadlocks.
//   - Pending: when no thread is parked (a CPU-bound program), the code is
//     queued with Py_AddPendingCall and the main thread's eval loop runs it
//     between two bytecodes, GIL held, interpreter consistent. The queueing
//     call is made from a parked thread when there is one, else from the
//     running main thread outside of CPython's pending-call machinery.
//   - A thread running arbitrary code is never made to run Python.
package inject

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
	"golang.org/x/sys/unix"
)

// Call is one function or system call made by the trampoline.
type Call struct {
	Fn      uint64    // address; FnMemcpy, FnSyscall or FnAddInt32 for the built-ins
	Args    [6]uint64 // System V argument registers
	ArgFrom [6]byte   // k+1: argument i is the result of call k
	Flags   uint64    // When... flags
	Aux     uint64    // system call number (FnSyscall) or address (AbortIfEqualMem)
}

// Built-in operations of the trampoline.
const (
	FnMemcpy  = 0
	FnSyscall = 1
	// FnAddInt32 adds Args[2] (its low 32 bits, signed) to the int32 at
	// Args[0] + Args[1]; the result is the new value.
	FnAddInt32 = 2
	// FnSub's result is Args[0] - Args[1].
	FnSub = 3
)

// Call flags: when the sequence stops, and which calls run after a stop.
const (
	AbortIfZero     = 1
	AbortIfNonzero  = 2
	AbortIfError    = 4 // -1 or -errno
	AbortIfEqualMem = 8 // result != 0 and result == *(uint64*)Aux
	Always          = 16
	Cleanup         = 32 // runs only after an abort
)

var (
	// ErrNoSafePoint means no thread reached a point where running Python
	// is safe before the timeout.
	ErrNoSafePoint = errors.New("no safe point")
	// ErrTargetStopped means the target was stopped by job control (SIGSTOP).
	ErrTargetStopped = errors.New("the process is stopped")
	// ErrExited means the process exited during the operation.
	ErrExited = errors.New("the process exited")
	// ErrExec means the process replaced its program (execve): the
	// interpreter lptrace worked on is gone, and so is all it wrote.
	ErrExec = errors.New("the process exec'd another program")
	// ErrUnusableThread means a thread cannot take a call (try another).
	ErrUnusableThread = errors.New("thread not usable")
	// ErrUnsupportedArch means injection is not implemented for this CPU.
	ErrUnsupportedArch = errors.New("injection is not implemented on this architecture")
)

// Injector injects calls into one process.
type Injector struct {
	tr     *ptrace.Tracer
	tgt    *symbols.Target
	pid    int
	xsave  int
	sigs   map[int]int // completion signal per thread
	tramp  uint64      // 0 until installed
	found  []byte      // bytes at tramp before lptrace wrote there
	wrote  bool
	region *symbols.Module
	// lock is held while the trampoline is in use (see trampolineLock).
	lock *trampolineLock
	// inFlight is set once lptrace let go of a thread in the middle of a
	// call: that thread will run the trampoline on its own, so its bytes
	// must stay.
	inFlight bool
	// program identifies the program at New (proc.ProgramID); execd is set
	// once it was replaced: every address lptrace knows is then wrong, so
	// the injector touches nothing any more.
	program string
	execd   bool
	// mem is /proc/PID/mem opened at New: it refers to that address space
	// for good, so nothing written through it can land in a program the
	// process exec'd since (the kernel drops writes to a replaced one).
	mem *os.File
	// holdFor, when set, makes the threads attached from now on hold the
	// program's signals (see Thread.hold).
	holdFor time.Duration
	// mapsRead is when tgt.Maps was read; stackLimit is the process's
	// RLIMIT_STACK as first read (1: none found).
	mapsRead   time.Time
	stackLimit uint64
	restops    int // how often a busy thread was stopped again (Restops)
	// seenAt is where each running thread was last stopped (Describe).
	seenAt map[int]uint64
}

// Restops says how often a busy thread was let run on and stopped again
// because it was stopped where no call may be queued (LPTRACE_TIMING).
func (inj *Injector) Restops() int { return inj.restops }

// New prepares an injector for the process described by tgt.
func New(tr *ptrace.Tracer, tgt *symbols.Target) *Injector {
	inj := &Injector{tr: tr, tgt: tgt, pid: tgt.PID, program: tgt.Program, mapsRead: tgt.MapsRead}
	if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", tgt.PID), os.O_RDWR, 0); err == nil {
		inj.mem = f
		if inj.Execd() { // exec'd before the file was opened
			f.Close()
			inj.mem = nil
		}
	}
	return inj
}

// Close releases what New opened.
func (inj *Injector) Close() {
	inj.dropLock()
	if inj.mem != nil {
		inj.mem.Close()
		inj.mem = nil
	}
}

// writeMem writes into the target's memory; tid is a thread lptrace holds
// stopped (used when /proc/PID/mem could not be opened).
func (inj *Injector) writeMem(tid int, addr uint64, b []byte) error {
	if inj.mem == nil {
		return inj.tr.WriteMem(tid, addr, b)
	}
	return inj.memDone("write", addr, b, inj.mem.WriteAt)
}

// readMem reads the target's memory, like writeMem.
func (inj *Injector) readMem(tid int, addr uint64, b []byte) error {
	if inj.mem == nil {
		return inj.tr.ReadMem(tid, addr, b)
	}
	return inj.memDone("read", addr, b, inj.mem.ReadAt)
}

// memDone does one transfer through /proc/PID/mem; a short one means the
// address space is gone (an exec) or the address is not mapped.
func (inj *Injector) memDone(what string, addr uint64, b []byte, at func([]byte, int64) (int, error)) error {
	if n, err := at(b, int64(addr)); err != nil || n != len(b) {
		if inj.Execd() {
			return ErrExec
		}
		return fmt.Errorf("%s %d bytes at %#x: %d done: %w", what, len(b), addr, n, err)
	}
	return nil
}

// Thread is a seized, stopped thread of the target.
type Thread struct {
	TID  int
	inj  *Injector
	orig ptrace.Regs
	// Syscall and InCall describe where it stopped.
	Syscall  int
	InCall   bool
	detached bool
	// The program's signals that arrived while lptrace held the thread,
	// one bit each, and until when new ones are held.
	held      uint64
	holdUntil time.Time
	// delivered: the program's signals delivered while lptrace's calls
	// ran in the thread, one bit each.
	delivered uint64
	// sameProgram: its first stop found the program of New; a later exec
	// would be reported to lptrace as an event of the seized thread.
	sameProgram bool
}

// hold keeps an asynchronous signal of the program that arrives while
// lptrace holds the thread: delivered now, its Python handler would run
// inside lptrace's payload at its first instruction (the program's Ctrl-C
// would then interrupt the payload and be lost to the program). It is sent
// again once the thread is back in its own code, or when the hold expires.
// Signals that report a fault, or carry data (sigqueue, timers: their
// siginfo could not be sent again as it was), or stop the process, are
// never held.
func (th *Thread) hold(sig int) bool {
	switch unix.Signal(sig) {
	case unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGALRM, unix.SIGTERM, unix.SIGVTALRM, unix.SIGPROF:
	default:
		return false
	}
	if !time.Now().Before(th.holdUntil) {
		return false
	}
	const siUser, siKernel, siTkill = 0, 0x80, -6 // kill, the kernel (setitimer), tgkill
	switch code, err := th.inj.tr.SigCode(th.TID); {
	case err != nil:
		return false
	case code != siUser && code != siKernel && code != siTkill:
		return false
	}
	th.held |= 1 << sig
	return true
}

// resend sends the held signals to the thread again, and ends the hold.
func (th *Thread) resend() {
	th.holdUntil = time.Time{}
	if th.inj.execd {
		th.held = 0 // see lostProgram's caller in Run
		return
	}
	for sig := 1; th.held != 0 && sig < 64; sig++ {
		if th.held&(1<<sig) != 0 {
			th.held &^= 1 << sig
			ptrace.Tgkill(th.inj.pid, th.TID, sig)
		}
	}
}

// Attach seizes a thread and stops it. The caller must Release it.
func (inj *Injector) Attach(ctx context.Context, tid int) (*Thread, error) {
	if inj.execd {
		return nil, ErrExec
	}
	if err := inj.seize(tid); err != nil {
		return nil, err
	}
	th := &Thread{TID: tid, inj: inj}
	if inj.holdFor > 0 {
		th.holdUntil = time.Now().Add(inj.holdFor)
	}
	if err := inj.stop(th); err != nil {
		th.resend() // held while it stopped: the program's after all
		return nil, err
	}
	return th, nil
}

// TracedError means PTRACE_SEIZE of a thread was refused because another
// process traces it: the kernel says EPERM, as for a refusal, and the
// thread's TracerPid tells the two apart.
type TracedError struct {
	TID    int    // the thread
	Tracer int    // the tracer's process ID
	Name   string // its command name
	// Lptrace: the tracer is another lptrace (or ended since), which holds
	// a thread for the moment of a call: worth waiting for.
	Lptrace bool
}

func (e *TracedError) Error() string {
	if e.Lptrace {
		return fmt.Sprintf("thread %d is held by another lptrace (process %d)", e.TID, e.Tracer)
	}
	return fmt.Sprintf("thread %d is traced by process %d (%s)", e.TID, e.Tracer, e.Name)
}

// seize seizes a thread; a thread traced by another process is refused
// with a *TracedError.
func (inj *Injector) seize(tid int) error {
	err := inj.tr.Seize(tid)
	for try := 0; err != nil && ptrace.IsPermission(err); try++ {
		te := tracedBy(inj.pid, tid)
		switch {
		case te != nil && te.Name != "":
			return te
		case te == nil && try > 0:
			// Refused, and traced by nobody: the kernel's refusal.
			return fmt.Errorf("attach to thread %d: %w", tid, err)
		case try == 3:
			return &TracedError{TID: tid, Tracer: te.Tracer, Name: "gone", Lptrace: true}
		}
		// Its tracer let go of it (or ended) since: once more.
		err = inj.tr.Seize(tid)
	}
	if err != nil {
		return fmt.Errorf("attach to thread %d: %w", tid, err)
	}
	return nil
}

// tracedBy names the process that traces thread tid of pid, nil if none
// (or lptrace itself). Name is "" when the tracer ended meanwhile.
func tracedBy(pid, tid int) *TracedError {
	ts, err := proc.ReadTaskStatus(pid, tid)
	if err != nil || ts.TracerPid == 0 {
		return nil
	}
	// TracerPid is the tracer's thread: name its process.
	te := &TracedError{TID: tid, Tracer: ts.TracerPid}
	st, err := proc.ReadStatus(ts.TracerPid)
	if err != nil {
		return te
	}
	if st.Tgid == os.Getpid() {
		return nil
	}
	te.Tracer, te.Name = st.Tgid, st.Name
	te.Lptrace = st.Name == "lptrace" || st.Name == selfName()
	return te
}

// TracedByOther returns a thread of pid traced by a process other than an
// lptrace (a debugger, strace), or nil.
func TracedByOther(pid int) *TracedError {
	tids, _ := proc.Threads(pid)
	for _, tid := range tids {
		if te := tracedBy(pid, tid); te != nil && !te.Lptrace && te.Name != "" {
			return te
		}
	}
	return nil
}

// selfName is lptrace's own command name (another build of it, renamed,
// has the same).
var selfName = sync.OnceValue(func() string {
	if st, err := proc.ReadStatus(os.Getpid()); err == nil {
		return st.Name
	}
	return "lptrace"
})

// Restop lets a stopped thread run on for a moment and stops it again,
// still seized: the place where it stopped was no place for lptrace's
// calls (a new Attach would seize and detach it again, four times the
// cost). The program's signals held so far, and those that arrive
// meanwhile, are delivered in its own code; the hold resumes for the
// calls. On an error the thread is no longer held.
func (th *Thread) Restop(pause time.Duration) error {
	inj := th.inj
	until := th.holdUntil
	th.resend()
	defer func() { th.holdUntil = until }()
	if err := inj.tr.Cont(th.TID, 0); err != nil {
		th.detached = true
		return inj.abandon(th.TID, fmt.Errorf("resume thread %d: %w", th.TID, err))
	}
	nap(pause)
	if err := inj.stop(th); err != nil {
		th.detached = true
		th.resend()
		return err
	}
	return nil
}

// nap sleeps d in the kernel: time.Sleep of less than a millisecond
// takes a millisecond or more (the Go runtime's timers), and spinning
// instead would keep from its CPU the very thread lptrace lets run.
func nap(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.Nanosleep(&ts, nil)
}

// stop interrupts a seized thread and waits until it stops, then reads
// where. On an error the thread has been let go (or is gone).
func (inj *Injector) stop(th *Thread) error {
	tid := th.TID
	if err := inj.tr.Interrupt(tid); err != nil {
		return inj.abandon(tid, fmt.Errorf("stop thread %d: %w", tid, err))
	}
	for {
		st, err := inj.tr.Wait(tid, 2*time.Second)
		if err != nil {
			if err == ptrace.ErrTimeout && inj.lostThread(tid) {
				return inj.collectExec()
			}
			if err == ptrace.ErrTimeout {
				// A thread in uninterruptible sleep (D state) cannot stop
				// yet. Withdraw; the pending interrupt is cancelled by detach
				// once it stops.
				return inj.abandon(tid, fmt.Errorf("thread %d did not stop within 2s", tid))
			}
			return inj.abandon(tid, err)
		}
		switch {
		case st.Exited:
			return ErrExited
		case st.Event == ptrace.EventExec:
			return inj.lostProgram(tid)
		case st.InterruptStop():
			// Stopped: it runs the program of New, unless the process
			// exec'd before this thread was seized.
			if !th.sameProgram {
				if id := proc.ProgramID(inj.pid); id != "" && inj.program != "" && id != inj.program {
					return inj.lostProgram(tid)
				}
				th.sameProgram = true
			}
			regs, err := inj.tr.GetRegs(tid)
			if err != nil {
				inj.detach(tid)
				return err
			}
			parked := inj.keepCallAlive(tid, &regs)
			th.orig = regs
			th.Syscall, th.InCall = syscallState(&regs)
			th.InCall = th.InCall || parked
			if !th.InCall {
				if inj.seenAt == nil {
					inj.seenAt = map[int]uint64{}
				}
				inj.seenAt[tid] = regs.PC()
			}
			if inj.xsave == 0 {
				if inj.xsave, err = checkArch(inj.tr, tid); err != nil {
					inj.detach(tid)
					return err
				}
			}
			return nil
		case st.GroupStop():
			inj.detach(tid)
			return ErrTargetStopped
		case st.Event == 0:
			// A signal arrived first: deliver it (or hold it), the
			// interrupt stays pending.
			sig := st.Signal
			if th.hold(sig) {
				sig = 0
			}
			if err := inj.tr.Cont(tid, sig); err != nil {
				return inj.abandon(tid, err)
			}
		default:
			if err := inj.tr.Cont(tid, 0); err != nil {
				return inj.abandon(tid, err)
			}
		}
	}
}

// keepCallAlive deals with a system call that lptrace's stop ended with
// EINTR (epoll_wait and the like, see endedByStop): the thread was parked
// there, and still counts as parked. A call with no timeout is made one
// that the kernel restarts when the thread resumes: the program never sees
// the stop. A call with a timeout returns EINTR, which Python 3 answers by
// waiting again for what is left of its timeout (restarted, the call would
// wait its whole timeout again: an event loop's next timer late by up to
// that much); Python 2.7's epoll.poll would raise IOError(EINTR) instead,
// so there it is restarted, a wait longer by the time it had waited.
func (inj *Injector) keepCallAlive(tid int, regs *ptrace.Regs) bool {
	if ended, _ := endedByStop(regs, syscallInsn); !ended {
		return false // (the cheap test first: no read for most stops)
	}
	var before [2]byte
	if inj.readMem(tid, regs.PC()-2, before[:]) != nil {
		return false
	}
	ended, forever := endedByStop(regs, before)
	if ended && (forever || inj.tgt.Version.Major == 2) {
		makeRestartable(regs)
	}
	return ended
}

// lostProgram lets go of a thread of a process that exec'd: the new
// program runs on, untouched.
func (inj *Injector) lostProgram(tid int) error {
	inj.execd = true
	inj.detach(tid)
	return ErrExec
}

// detach lets go of a stopped thread. A thread killed meanwhile (SIGKILL
// ends even a ptrace stop: an exec in another thread, the process's exit)
// cannot be detached but must be reaped: until its tracer collects it, a
// dead thread holds up the exec or the exit of its whole process.
func (inj *Injector) detach(tid int) {
	if inj.tr.Detach(tid, 0) == ptrace.ErrGone {
		inj.abandon(tid, nil)
	}
}

// lostThread tells, after a wait on tid timed out, whether the process
// exec'd: the thread that execs takes the process ID, and its exec stop
// is reported under that ID, so a wait on its old ID (or on the old
// leader's) never ends.
func (inj *Injector) lostThread(tid int) bool {
	if inj.Execd() {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", inj.pid, tid))
	return os.IsNotExist(err) && proc.Alive(inj.pid)
}

// collectExec lets the program a thread of ours exec'd run: it waits in
// its exec stop under the process ID. Returns ErrExec.
func (inj *Injector) collectExec() error {
	inj.execd = true
	if st, err := inj.tr.Wait(inj.pid, 200*time.Millisecond); err == nil && !st.Exited {
		inj.tr.Detach(inj.pid, 0)
	}
	return ErrExec
}

// abandon detaches from a thread that may not have stopped yet, or reaps
// it if it died.
func (inj *Injector) abandon(tid int, cause error) error {
	inj.tr.Interrupt(tid)
	for i := 0; i < 50; i++ {
		st, err := inj.tr.Wait(tid, 100*time.Millisecond)
		if err == ptrace.ErrTimeout && inj.lostThread(tid) {
			inj.collectExec()
			return cause
		}
		if err == ptrace.ErrTimeout {
			continue
		}
		if err != nil || st.Exited {
			return cause
		}
		sig := 0
		if st.Event == 0 {
			sig = st.Signal
		}
		if inj.tr.Detach(tid, sig) == nil {
			return cause
		}
	}
	return fmt.Errorf("%w; thread %d is still attached", cause, tid)
}

// Release puts back the thread's original registers and detaches.
func (th *Thread) Release() error {
	if th.detached {
		return nil
	}
	th.detached = true
	var regsErr error
	if !th.inj.execd {
		if err := th.inj.tr.SetRegs(th.TID, th.orig); err != nil && err != ptrace.ErrGone {
			regsErr = err
		}
	}
	th.resend() // pending now, delivered in the thread's own code once detached
	err := th.inj.tr.Detach(th.TID, 0)
	if err == ptrace.ErrGone {
		th.inj.abandon(th.TID, nil) // killed meanwhile: reap it (see detach)
		return regsErr
	}
	if regsErr != nil {
		return regsErr
	}
	return err
}

// SP is the stack pointer where the thread stopped.
func (th *Thread) SP() uint64 { return th.orig.SP() }

// PC is the instruction pointer where the thread stopped.
func (th *Thread) PC() uint64 { return th.orig.PC() }

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
	l := newLayout(th.orig.SP(), len(calls), inj.xsave)
	block := buildBlock(l, calls, th.orig, inj.signal(th.TID))
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

// letGo detaches from a thread in the middle of a call: the trampoline
// completes the call and restores the thread by itself.
func (inj *Injector) letGo(th *Thread) {
	th.resend()
	inj.detach(th.TID)
	th.detached = true
	inj.inFlight = true
}

// consumeInterrupt waits for the stop of an outstanding PTRACE_INTERRUPT,
// passing signals through, so the thread is stopped with nothing pending.
func (inj *Injector) consumeInterrupt(tid int) {
	regs, _ := inj.tr.GetRegs(tid)
	if err := inj.tr.Cont(tid, 0); err != nil {
		return
	}
	for i := 0; i < 100; i++ {
		st, err := inj.tr.Wait(tid, 100*time.Millisecond)
		if err == ptrace.ErrTimeout && inj.lostThread(tid) {
			inj.collectExec()
			return
		}
		if err != nil {
			if err == ptrace.ErrTimeout {
				continue
			}
			return
		}
		if st.Exited {
			return
		}
		if st.Event == ptrace.EventExec {
			inj.lostProgram(tid)
			return
		}
		if st.Event != 0 {
			inj.tr.SetRegs(tid, regs)
			return
		}
		inj.tr.Cont(tid, st.Signal)
	}
}

// unusable is why a thread whose signal mask leaves lptrace no completion
// signal cannot take a call.
func unusable(tid int) string {
	return fmt.Sprintf("thread %d blocks SIGURG, SIGWINCH and SIGCHLD", tid)
}

// signalNow is signal, checked against the mask the stopped thread has
// now: a thread may block more at times (one stopped inside another
// lptrace's pending call blocks nearly every signal), and a completion
// signal it blocks never stops it, which left lptrace waiting out the
// call's whole timeout (3 s, the program's main thread held meanwhile).
func (inj *Injector) signalNow(tid int) int {
	tst, err := proc.ReadTaskStatus(inj.pid, tid)
	if err != nil {
		return inj.signal(tid)
	}
	if s, ok := inj.sigs[tid]; ok && tst.SigBlk&(uint64(1)<<(s-1)) == 0 {
		return s
	}
	delete(inj.sigs, tid)
	return inj.pickSignal(tid, tst)
}

// signal picks the completion signal for a thread: one not blocked in it
// and, if possible, left at its default action (ignore) by the program, so
// that a trampoline finishing after lptrace died goes unnoticed. 0 means
// every candidate is blocked in that thread: it cannot be used, since the
// call would end without the stop that lets lptrace clean up.
func (inj *Injector) signal(tid int) int {
	if s, ok := inj.sigs[tid]; ok {
		return s
	}
	// A thread's status has the process's handlers too (SigCgt, SigIgn).
	tst, err := proc.ReadTaskStatus(inj.pid, tid)
	if err != nil {
		return 0
	}
	return inj.pickSignal(tid, tst)
}

// pickSignal is signal's choice from the thread's status, remembered.
func (inj *Injector) pickSignal(tid int, tst *proc.Status) int {
	candidates := []int{int(unix.SIGURG), int(unix.SIGWINCH), int(unix.SIGCHLD)}
	best := 0
	for _, s := range candidates {
		bit := uint64(1) << (s - 1)
		if tst.SigBlk&bit != 0 {
			continue
		}
		if best == 0 {
			best = s
		}
		if (tst.SigCgt|tst.SigIgn)&bit == 0 {
			best = s
			break
		}
	}
	if best == 0 {
		return 0 // not remembered: the thread may unblock one later
	}
	if inj.sigs == nil {
		inj.sigs = map[int]int{}
	}
	inj.sigs[tid] = best
	return best
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

// Parked describes a thread blocked in a system call.
type Parked struct {
	TID     int
	Syscall int
}

// Classify reads where each thread is without stopping any: parked in a
// blocking call with the GIL released (safe for direct calls), or not.
func (inj *Injector) Classify() (parked []Parked, running []int, err error) {
	tids, err := proc.Threads(inj.pid)
	if err != nil {
		return nil, nil, err
	}
	for _, tid := range tids {
		sc, err := proc.ReadSyscall(inj.pid, tid)
		if err != nil {
			continue
		}
		switch {
		case sc.Running:
			running = append(running, tid)
		case sc.Nr == sysRestartSyscall:
			// A timed wait resumed after an interruption; the kernel does not
			// say which. The C library function it was called from does: a
			// sleep or a poll is safe, a futex wait (maybe the GIL's) is not.
			if inj.inRestartableSleep(sc.PC) {
				parked = append(parked, Parked{tid, sc.Nr})
			}
		case inj.safeSyscall(sc.Nr, sc.Args[0], sc.Args[1]):
			parked = append(parked, Parked{tid, sc.Nr})
		}
	}
	return parked, running, nil
}

// ThreadState says what a thread is doing, for messages.
type ThreadState struct {
	TID   int
	Name  string
	Doing string // "runs", "waits for the GIL", "is blocked in nanosleep", ...
}

// Describe reads what every thread is doing, without stopping any. When no
// safe point comes, the thread that is neither waiting for the GIL nor
// parked is the one holding it.
func (inj *Injector) Describe() []ThreadState {
	tids, _ := proc.Threads(inj.pid)
	var out []ThreadState
	for _, tid := range tids {
		t := ThreadState{TID: tid}
		if st, err := proc.ReadTaskStatus(inj.pid, tid); err == nil {
			t.Name = st.Name
		}
		sc, err := proc.ReadSyscall(inj.pid, tid)
		switch {
		case err != nil:
			t.Doing = "cannot be read"
		case sc.Running && inj.seenAt[tid] != 0:
			t.Doing = "runs (last stopped in " + inj.Where(inj.seenAt[tid]) + ")"
		case sc.Running:
			t.Doing = "runs (in C code, or Python code holding the GIL)"
		case sc.Nr == sysFutex && inj.tgt.Python.InStaticData(sc.Args[0]):
			t.Doing = "waits for the GIL"
		default:
			t.Doing = "is blocked in " + SyscallName(sc.Nr)
		}
		out = append(out, t)
	}
	return out
}

// safeSyscall: blocking calls that CPython makes with the GIL released.
// A futex wait is safe as a wait of the program (a Python lock, a queue, a
// condition variable of a C library), never as a wait on the GIL:
// re-entering the GIL from inside its own wait deadlocks (seen on 3.8 and
// 3.11-3.13). The GIL's mutex and condition variable are static variables
// of the runtime (_PyRuntime on 3.7+, file-level statics on 3.6; checked
// on every version 3.6-3.15 here), so a futex inside the runtime's data
// (.data or .bss) is refused. 2.7's GIL is a semaphore on the heap: a
// nested wait on a semaphore is harmless (and the GIL check in the call
// sequence still applies). Priority-inheritance and requeue operations are
// refused. Of fcntl, only a wait for a lock (the others do not block).
//
// The list holds where the standard library blocks with the GIL released
// (checked on every version): time.sleep (select before 3.11,
// clock_nanosleep after), socket (accept, recv, send, connect, poll for
// timeouts, sendfile), selectors and asyncio (select, poll, epoll_wait,
// epoll_pwait), subprocess and os (wait4, waitid, read, write), threading
// and queue (futex), signal (pause, sigsuspend, sigtimedwait), fcntl
// (lockf, flock).
func (inj *Injector) safeSyscall(nr int, uaddr, op uint64) bool {
	if _, ok := parkedSyscalls[nr]; !ok || nr == sysRestartSyscall {
		return false // restart_syscall: see Classify
	}
	if nr == sysFcntl {
		const setLockWait, ofdSetLockWait = 7, 38 // F_SETLKW, F_OFD_SETLKW: fcntl.lockf, fcntl.fcntl
		return op == setLockWait || op == ofdSetLockWait
	}
	if nr == sysFutex {
		if inj.tgt.Python.InStaticData(uaddr) {
			return false
		}
		const cmdMask = 0x7f
		switch op & cmdMask {
		case 0, 9: // FUTEX_WAIT, FUTEX_WAIT_BITSET
			return true
		}
		return false
	}
	return true
}

// stackRoom returns how many bytes the thread's stack can still grow below sp.
func (inj *Injector) stackRoom(sp uint64) uint64 {
	// Without queries: the main thread's stack in maps read a moment ago
	// is still right: the kernel never shrinks it, and a busy main thread
	// is the usual case (a read of the maps costs 0.1-0.3 ms of an attach,
	// more for a big process). Other threads' stacks come and go: read
	// again.
	if !inj.queries() && (time.Since(inj.mapsRead) > mapsFresh || !inj.inMainStack(sp)) {
		if maps, err := proc.ReadMaps(inj.pid); err == nil {
			inj.tgt.Maps = maps // threads started since have new stacks
			inj.mapsRead = time.Now()
		}
	}
	// The mapping holding the word below sp (sp may be its very end).
	if m, ok := inj.mappingAt(sp - 1); ok {
		if m.Path == "[stack]" {
			if inj.stackLimit == 0 {
				inj.stackLimit = max(proc.StackLimit(inj.pid), 1)
			}
			if lim := inj.stackLimit; lim > 1 && m.End > lim {
				if floor := m.End - lim; sp > floor {
					return sp - floor
				}
				return 0
			}
			return 8 << 20
		}
		// A thread stack: an anonymous mapping (recent glibc guards
		// stacks without a separate mapping, so neighbours may merge).
		// A stack pointer in the brk heap or in a file mapping (a
		// malloc'd alternate stack, a coroutine) has no room we trust.
		if m.Path == "" {
			return sp - m.Start
		}
		return 0
	}
	return 0
}

// mapsFresh is how long stackRoom trusts the maps for the main thread's
// stack.
const mapsFresh = 100 * time.Millisecond

// queries reports whether the kernel answers for one address at a time
// (proc.Maps): then every answer is current, and Target.Maps holds only the
// file mappings.
func (inj *Injector) queries() bool { return inj.tgt.MapQuery != nil }

// mappingAt returns the mapping that holds addr: asked of the kernel, else
// looked up in the maps as last read.
func (inj *Injector) mappingAt(addr uint64) (proc.Mapping, bool) {
	if inj.queries() {
		m, ok, err := inj.tgt.MapQuery.At(addr)
		return m, ok && err == nil
	}
	for _, m := range inj.tgt.Maps {
		if addr >= m.Start && addr < m.End {
			return m, true
		}
	}
	return proc.Mapping{}, false
}

// inMainStack reports whether sp, and the call block below it, lie in the
// main thread's stack as last read.
func (inj *Injector) inMainStack(sp uint64) bool {
	for _, m := range inj.tgt.Maps {
		if m.Path == "[stack]" {
			return sp >= m.Start+64<<10 && sp <= m.End // room for any call block
		}
	}
	return false
}

// mapped reports whether [addr, addr+n) is mapped writable in the target:
// the context block must be, since the kernel does not grow a stack for
// process_vm_writev.
func (inj *Injector) mapped(addr, n uint64) bool {
	m, ok := inj.mappingAt(addr)
	return ok && addr+n <= m.End && len(m.Perms) > 1 && m.Perms[1] == 'w'
}

var restartableSleep = lazyRegexp(`^_*(clock_nanosleep|nanosleep|usleep|sleep|poll|ppoll|select|pselect|epoll_wait|epoll_pwait)(@|$|_)`)

// inRestartableSleep reports whether pc lies in a C library function that
// sleeps or polls.
func (inj *Injector) inRestartableSleep(pc uint64) bool {
	if inj.tgt.Libc == nil {
		return false
	}
	name, ok := inj.tgt.Libc.SymbolAt(pc)
	return ok && restartableSleep().MatchString(name)
}

// (lock, enqueue, dequeue, fix_status: small static helpers of the locks,
// e.g. parking_lot.c's and thread_pthread.h's, should a build not inline them.)
var pendingMachinery = lazyRegexp(`(?i)pending|eval_breaker|signal|PyThread_|mutex|parking|semaphore|gil|_PyMem|malloc|free|lock|enqueue|dequeue|fix_status`)

// inPendingMachinery reports whether pc may be inside code that holds the
// lock Py_AddPendingCall takes, or inside the C runtime (the C library, the
// loader, code lptrace cannot tell): a call to Py_AddPendingCall from
// there could deadlock on it. Another library's code (a BLAS routine that
// numpy called with the GIL released, for a second) holds no lock of
// CPython's, and Py_AddPendingCall is made to be called from any thread,
// with or without the GIL.
func (inj *Injector) inPendingMachinery(tid int, pc uint64) bool {
	py := inj.tgt.Python
	m, ok := inj.mappingAt(pc)
	if !ok {
		return true
	}
	if m.Path != py.Path {
		return inj.inCRuntime(m) && !inj.inStringOp(tid, pc)
	}
	name, ok := py.SymbolAt(pc)
	if !ok {
		return true // unknown static function: be careful
	}
	return pendingMachinery().MatchString(name)
}

// inStringOp tells whether the thread stopped at a string instruction of
// the C library's memset or memcpy (rep stos, rep movs): a long C call
// filling or copying megabytes (numpy, BLAS) spends its page faults there,
// and such a routine holds no lock. (The C library's other code is not
// named where it is stripped.)
func (inj *Injector) inStringOp(tid int, pc uint64) bool {
	var b [3]byte
	if inj.readMem(tid, pc, b[:]) != nil || b[0] != 0xf3 {
		return false
	}
	op := b[1]
	if op == 0x48 { // REX.W
		op = b[2]
	}
	switch op {
	case 0xa4, 0xa5, 0xaa, 0xab: // movs, stos
		return true
	}
	return false
}

// inCRuntime tells whether mapping m is the C runtime's code (C library,
// loader, threads library) or code of no file (the vDSO, code made at run
// time): lptrace cannot tell what locks it holds.
func (inj *Injector) inCRuntime(m proc.Mapping) bool {
	for _, mod := range []*symbols.Module{inj.tgt.Libc, inj.tgt.Loader} {
		if mod != nil && m.Path == mod.Path {
			return true
		}
	}
	return !strings.HasPrefix(m.Path, "/") || cRuntime().MatchString(filepath.Base(m.Path))
}

var cRuntime = lazyRegexp(`^(libc|libpthread|librt|libdl|ld-linux|ld-musl|ld)[-.]`)

// Where names the code at pc for messages: "libblas.so.3 (dgemm_)".
func (inj *Injector) Where(pc uint64) string {
	m, ok := inj.mappingAt(pc)
	if !ok {
		return fmt.Sprintf("unmapped code at %#x", pc)
	}
	if m.Path == "" || !strings.HasPrefix(m.Path, "/") {
		return fmt.Sprintf("code made at run time at %#x", pc)
	}
	where := filepath.Base(m.Path)
	for _, mod := range []*symbols.Module{inj.tgt.Python, inj.tgt.Libc, inj.tgt.Loader} {
		if mod != nil && mod.Path == m.Path {
			if name, ok := mod.SymbolAt(pc); ok {
				return where + " (" + name + ")"
			}
		}
	}
	return where
}

// lazyRegexp compiles pattern on first use, not at lptrace's start (an
// attach is timed from there; most commands need few of them).
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
