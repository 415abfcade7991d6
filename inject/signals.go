// Signals that arrive while lptrace holds a thread: held, then sent again.

package inject

import (
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"golang.org/x/sys/unix"
)

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

// pendingBlocked is the kernel signal set the pending-call entry blocks
// while the code runs: every standard signal but those a fault raises in
// the thread itself (ILL TRAP ABRT BUS FPE SEGV SYS), SIGPIPE (the
// payload's own writes handle it) and the unblockable KILL and STOP.
// Real-time signals stay open: the C library uses two of them between
// its threads (setxid, cancellation).
var pendingBlocked = func() uint64 {
	var set uint64
	for sig := 1; sig <= 31; sig++ {
		switch sig {
		case 4, 5, 6, 7, 8, 9, 11, 13, 19, 31:
		default:
			set |= 1 << (sig - 1)
		}
	}
	return set
}()
