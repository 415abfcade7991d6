// Package ptrace is lptrace's only door to the kernel's process-tracing
// interface. Every ptrace request is issued from one goroutine locked to one
// OS thread, because the kernel ties a tracee to the tracer *thread* that
// attached it. Waits may run on any thread of lptrace.
//
// The package deliberately knows nothing about Python: it seizes threads,
// stops and resumes them, reads and writes their registers and memory.
package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/lptrace/lptrace/proc"
	"golang.org/x/sys/unix"
)

// ErrTimeout is returned by Wait when the thread did not change state in time.
var ErrTimeout = errors.New("timed out")

// ErrGone means the thread or process no longer exists.
var ErrGone = errors.New("thread is gone")

// Tracer owns the OS thread that issues ptrace requests. It has no Close:
// the thread lives as long as lptrace (see NewTracer); what ends is each
// tracee's seizure.
//
//	t := ptrace.NewTracer()
//	if err := t.Seize(tid); err != nil { ... }
//	t.Interrupt(tid)
//	stop, err := t.Wait(tid, time.Second) // stopped: read, write, run code
//	...
//	t.Detach(tid, 0)
type Tracer struct {
	reqs  chan func()
	tid   int           // the tracer thread's own ID, once ready is closed
	ready chan struct{} // closed once the thread runs

	mu      sync.Mutex
	waiters map[int]chan waitResult // one outstanding wait4 per thread
}

type waitResult struct {
	status unix.WaitStatus
	err    error
}

// NewTracer starts the tracer thread. The goroutine keeps its OS thread
// locked for the life of the process: if a locked goroutine exits, Go
// terminates the thread and the kernel detaches every tracee, possibly in the
// middle of an injected call.
func NewTracer() *Tracer {
	t := &Tracer{reqs: make(chan func()), ready: make(chan struct{}), waiters: map[int]chan waitResult{}}
	// Not waited for here: starting a thread can take a millisecond or two
	// on a busy machine, time the caller spends reading the target.
	go func() {
		runtime.LockOSThread()
		// Its short sleeps (Wait's polls, the pauses of the caller's Exec)
		// sleep as long as asked, not 50 µs more.
		unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
		t.tid = unix.Gettid()
		close(t.ready)
		for f := range t.reqs {
			f()
		}
		// Never unlock: parking here keeps the thread (and the tracees) alive
		// until the process exits.
		select {}
	}()
	return t
}

// onThread tells whether the caller runs on the tracer thread (inside Exec).
func (t *Tracer) onThread() bool {
	select {
	case <-t.ready:
		return unix.Gettid() == t.tid
	default:
		return false
	}
}

// do runs f on the tracer thread and waits for it; on that thread (inside
// Exec) it runs f at once.
func (t *Tracer) do(f func()) {
	<-t.ready
	if t.onThread() {
		f()
		return
	}
	done := make(chan struct{})
	t.reqs <- func() { f(); close(done) }
	<-done
}

// Exec runs f on the tracer thread, where the requests f makes go to the
// kernel directly: from another goroutine each one is handed to that
// thread and back, some 25-50 µs on a busy machine, and an injection makes
// dozens. Other goroutines' requests wait until f returns, so f must not
// wait for one of them.
func (t *Tracer) Exec(f func()) { t.do(f) }

// Seize attaches to a thread without stopping it (PTRACE_SEIZE), with one
// option, PTRACE_O_TRACEEXEC: an execve stops with EventExec, so that
// lptrace knows the program it works on is gone (and, in launch mode, sees
// the new one before it runs). Never PTRACE_O_EXITKILL, which would kill
// the target if lptrace died.
func (t *Tracer) Seize(tid int) error {
	var err error
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, unix.PTRACE_O_TRACEEXEC, 0, 0)
		if e != 0 {
			err = e
		}
	})
	return wrapErr(err)
}

// EventExec is the event of the stop after a successful execve.
const EventExec = unix.PTRACE_EVENT_EXEC

// SingleStep resumes a stopped thread for one instruction.
func (t *Tracer) SingleStep(tid int) error {
	var err error
	t.do(func() { err = unix.PtraceSingleStep(tid) })
	return wrapErr(err)
}

// Interrupt asks a seized thread to stop (PTRACE_INTERRUPT). A thread blocked
// in a system call leaves it with -ERESTART* in its return register.
func (t *Tracer) Interrupt(tid int) error {
	var err error
	t.do(func() { err = unix.PtraceInterrupt(tid) })
	return wrapErr(err)
}

// Cont resumes a stopped thread, delivering sig if it is not zero.
func (t *Tracer) Cont(tid int, sig int) error {
	var err error
	t.do(func() { err = unix.PtraceCont(tid, sig) })
	return wrapErr(err)
}

// Detach releases a stopped thread, delivering sig if it is not zero.
func (t *Tracer) Detach(tid int, sig int) error {
	var err error
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(sig), 0, 0)
		if e != 0 {
			err = e
		}
	})
	return wrapErr(err)
}

// Stop describes why a thread stopped or ended.
type Stop struct {
	Exited   bool // the thread (or process) exited or was killed
	ExitCode int  // with Exited: exit status, or -signal when killed
	Status   int  // with Exited: waitpid's status (the core dump bit too)
	Signal   int  // with !Exited: the stop signal
	Event    int  // with !Exited: ptrace event (PTRACE_EVENT_STOP for interrupt and group stops)
}

// GroupStop reports a job-control stop (SIGSTOP, SIGTSTP, ...) seen by a
// seized thread.
func (s Stop) GroupStop() bool {
	if s.Exited || s.Event != unix.PTRACE_EVENT_STOP {
		return false
	}
	switch s.Signal {
	case int(unix.SIGSTOP), int(unix.SIGTSTP), int(unix.SIGTTIN), int(unix.SIGTTOU):
		return true
	}
	return false
}

// InterruptStop reports the stop caused by PTRACE_INTERRUPT.
func (s Stop) InterruptStop() bool {
	return !s.Exited && s.Event == unix.PTRACE_EVENT_STOP && s.Signal == int(unix.SIGTRAP)
}

func (s Stop) String() string {
	switch {
	case s.Exited && s.ExitCode < 0:
		return fmt.Sprintf("killed by %v", unix.Signal(-s.ExitCode))
	case s.Exited:
		return fmt.Sprintf("exited with status %d", s.ExitCode)
	case s.Event != 0:
		return fmt.Sprintf("event %d stop (%v)", s.Event, unix.Signal(s.Signal))
	}
	return fmt.Sprintf("stopped by %v", unix.Signal(s.Signal))
}

// Wait waits up to timeout for the thread's next stop or exit. A wait that
// times out stays armed and is picked up by the next Wait on that thread, so
// no state change is ever lost.
func (t *Tracer) Wait(tid int, timeout time.Duration) (Stop, error) {
	t.mu.Lock()
	ch, ok := t.waiters[tid]
	if !ok && t.onThread() {
		// Inside Exec, where a short sleep is short (its timer slack):
		// most stops come within microseconds (a stop asked for, a short
		// call), polled for a moment before a blocking wait4 on another
		// thread, which costs two thread wake-ups more.
		for i := 0; i < quickPolls; i++ {
			var ws unix.WaitStatus
			wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || wpid == tid {
				t.mu.Unlock()
				return waitDone(tid, waitResult{ws, err})
			}
			if i < quickPolls-1 && (timeout <= 0 || time.Duration(i+1)*quickPoll < timeout) {
				ts := unix.NsecToTimespec(int64(quickPoll))
				unix.Nanosleep(&ts, nil)
			}
		}
	}
	if !ok {
		ch = make(chan waitResult, 1)
		t.waiters[tid] = ch
		go func() {
			var ws unix.WaitStatus
			for {
				_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
				if err == unix.EINTR {
					continue
				}
				ch <- waitResult{ws, err}
				return
			}
		}()
	}
	t.mu.Unlock()

	var timer <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		timer = tm.C
	}
	select {
	case r := <-ch:
		t.mu.Lock()
		delete(t.waiters, tid)
		t.mu.Unlock()
		return waitDone(tid, r)
	case <-timer:
		return Stop{}, ErrTimeout
	}
}

// quickPolls of quickPoll each: how long Wait polls before it blocks.
const (
	quickPolls = 8
	quickPoll  = 15 * time.Microsecond
)

func waitDone(tid int, r waitResult) (Stop, error) {
	if r.err != nil {
		if r.err == unix.ECHILD {
			return Stop{}, ErrGone
		}
		return Stop{}, fmt.Errorf("wait for thread %d: %w", tid, r.err)
	}
	return decodeStatus(r.status), nil
}

func decodeStatus(ws unix.WaitStatus) Stop {
	switch {
	case ws.Exited():
		return Stop{Exited: true, ExitCode: ws.ExitStatus(), Status: int(ws)}
	case ws.Signaled():
		return Stop{Exited: true, ExitCode: -int(ws.Signal()), Status: int(ws)}
	case ws.Stopped():
		// The event is in bits 16-23 of the status, whatever the signal
		// (group stops of a seized thread carry SIGSTOP with PTRACE_EVENT_STOP).
		return Stop{Signal: int(ws.StopSignal()), Event: int(uint32(ws)>>16) & 0xff}
	}
	return Stop{Exited: true}
}

// PokeText writes buf at addr through a stopped, seized thread
// (PTRACE_POKEDATA), which works on read-only text: the kernel gives the
// process a private copy of the page. Only the words that differ are
// written. addr and len(buf) must be multiples of 8.
func (t *Tracer) PokeText(tid int, addr uint64, buf []byte) error {
	if addr%8 != 0 || len(buf)%8 != 0 {
		return fmt.Errorf("poke %d bytes at %#x: unaligned", len(buf), addr)
	}
	old := make([]byte, len(buf))
	if err := proc.VMRead(tid, addr, old); err != nil {
		return wrapErr(err)
	}
	var err error
	t.do(func() {
		for off := 0; off < len(buf); off += 8 {
			if string(old[off:off+8]) == string(buf[off:off+8]) {
				continue
			}
			// One aligned word per request (unix.PtracePokeData would peek
			// each word first).
			word := binary.LittleEndian.Uint64(buf[off : off+8])
			if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_POKEDATA, uintptr(tid), uintptr(addr)+uintptr(off), uintptr(word), 0, 0); e != 0 {
				err = fmt.Errorf("poke at %#x: %w", addr+uint64(off), wrapErr(e))
				return
			}
		}
	})
	return err
}

func wrapErr(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return ErrGone
	}
	return err
}

// IsPermission reports whether err is the kernel refusing access.
func IsPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// Tgkill sends sig to thread tid of process pid.
func Tgkill(pid, tid, sig int) error {
	return wrapErr(unix.Tgkill(pid, tid, unix.Signal(sig)))
}

// SigCode returns the si_code of the signal tid is stopped for (in a
// signal-delivery-stop): who sent it, and whether it carries data.
func (t *Tracer) SigCode(tid int) (int, error) {
	var info [128]byte // siginfo_t
	var err error
	t.do(func() {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&info[0])), 0, 0)
		if e != 0 {
			err = e
		}
	})
	if err != nil {
		return 0, wrapErr(err)
	}
	return int(int32(binary.LittleEndian.Uint32(info[8:]))), nil // after si_signo and si_errno
}
