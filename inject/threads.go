// Thread control: seizing a thread, stopping it where a call may be made,
// stopping it again, and letting it go.

package inject

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"golang.org/x/sys/unix"
)

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
	// vectors: the vector registers that the trampoline does not save,
	// when they hold live state (arm64's SVE, see saveVectors), read at
	// the first call since the stop (vectorsRead).
	vectors     []byte
	vectorsRead bool
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
	pre := inj.beforeStop(tid)
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
			parked := inj.keepCallAlive(tid, &regs, pre)
			th.orig = regs
			th.Syscall, th.InCall = inj.syscallAt(tid, &regs)
			th.InCall = th.InCall || parked
			th.vectors, th.vectorsRead = nil, false
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
// pre is what the kernel showed of the call before the stop (arm64 only,
// see beforeStop).
func (inj *Injector) keepCallAlive(tid int, regs *ptrace.Regs, pre *proc.Syscall) bool {
	if ended, _ := endedByStop(regs, syscallInsn); !ended {
		return false // (the cheap test first: no read for most stops)
	}
	var before syscallBytes
	if inj.readMem(tid, regs.PC()-uint64(len(before)), before[:]) != nil {
		return false
	}
	ended, forever := endedByStop(regs, before)
	if ended && (forever || inj.tgt.Version.Major == 2) {
		makeRestartable(regs, pre)
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
