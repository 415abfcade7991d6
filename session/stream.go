package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
	"github.com/lptrace/lptrace/transport"
	"golang.org/x/sys/unix"
)

// stream prints the events of the hook until ctx ends, the target goes
// away, or the reader of our output does; then detaches: closing the pipe is
// the signal. The hook sees the broken pipe at its next write (50 ms at
// most) and removes itself from every thread, exactly as when lptrace dies.
// beforeClose stops what else works on the target.
func (a *Trace) stream(ctx context.Context, ch *transport.Channel, recs <-chan transport.Item, beforeClose func()) error {
	// The collector comes back at the loop's first tick (steadyLater),
	// once the first events are out: turned on now, it would start a cycle
	// at once (the heap grew without it) and take the CPU that prints them.
	dec := trace.Decoder{Times: a.Config.Times, Values: a.Config.Values()}
	dec.Hooked = func(p *trace.Process) {
		if p.PID == a.PID && a.allHooked != nil {
			a.hookedOnce.Do(func() { close(a.allHooked) })
		}
	}
	// Once ctx ends, what is still queued is decoded but not shown: a
	// backlog of millions of events (a busy program traced with -T) would
	// take seconds to format, and look like an output nobody reads.
	var ended atomic.Bool
	dec.NewProcess = func(p *trace.Process) {
		Phase("hook's code " + p.Loaded)
		if p.PID != a.PID {
			a.Output.ShowPID()
			a.note(1, "process %d (forked by %d) attached", p.PID, p.PPID)
			go a.childExit(ctx, p.PID, &ended)
		}
	}
	stopWatch := context.AfterFunc(ctx, func() { ended.Store(true) })
	defer stopWatch()
	emit := func(e trace.Event) {
		if !ended.Load() {
			a.Output.Event(e) // (it turns [tid N] on at a process's second thread)
		}
	}
	if a.Sink != nil {
		// A recording takes what is queued when the session ends too (it
		// formats nothing meanwhile).
		emit = a.Sink
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// The loop runs apart so that Ctrl-C is obeyed even while a write of
	// the output blocks (a reader that stopped reading: | less, | sleep).
	// A recording takes what the hook recorded up to the end: the loop
	// reads on for a moment after it (the hook writes every 50 ms, the
	// ring is read every 200).
	loopCtx, grace := ctx, time.Duration(0)
	if a.Sink != nil {
		grace = 400 * time.Millisecond
		var cancel context.CancelFunc
		loopCtx, cancel = context.WithCancel(context.Background())
		defer cancel()
		stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
		defer stopGrace()
	}
	loopDone := make(chan error, 1)
	go func() { loopDone <- a.loop(loopCtx, recs, &dec, emit, tick.C) }()
	var reason error
	select {
	case reason = <-loopDone:
	case <-ctx.Done():
		select {
		case reason = <-loopDone:
		case <-time.After(500*time.Millisecond + grace):
			// Stuck writing: detach without touching the output again.
			beforeClose()
			ch.Close()
			return ErrOutputStalled
		}
	}
	a.Output.Flush()
	beforeClose()
	// Closing the pipe tells the hook to leave; it notices at its timer's
	// next turn (50 ms at most) and closes its end last, once it has
	// removed itself (profile functions, sys.monitoring tool, threading's
	// hook). "detached" is said after that.
	pipe := ch.Pipe()
	fd := -1
	if reason == nil {
		fd = hookFD(a.PID, pipe.Dev, pipe.Ino)
	}
	ch.Close()
	if fd >= 0 && !waitClosed(a.PID, fd, pipe.Dev, pipe.Ino, time.Second) && proc.Alive(a.PID) {
		a.say("process %d: the hook has not removed itself yet (it holds the GIL rarely, or is stopped): it does at its next turn", a.PID)
	}
	a.Output.AddDropped(dec.Dropped)
	if dec.Dropped > 0 {
		a.say("process %d: %s", a.PID, report.Dropped(dec.Dropped))
	}
	if dec.Undefined > 0 {
		a.say("process %d: %d events not shown: the hook lost the definition of their function or thread", a.PID, dec.Undefined)
	}
	for _, p := range unmatched(a.Config.Filters, &dec) {
		a.say("process %d: no call matched -e %s", a.PID, termsafe.Escape([]byte(p), false))
	}
	a.childExits()
	switch {
	case errors.Is(reason, errExited):
		status, known := a.exitStatus()
		a.Output.Exit(a.PID, status, known)
		if a.ToFile {
			a.note(2, "process %d %s", a.PID, report.HowEnded(status, known))
		}
		return nil
	case errors.Is(reason, errExecd):
		exe := proc.Executable(a.PID)
		a.say("process %d exec'd %s: the hook went with the old program", a.PID, termsafe.Escape([]byte(exe), false))
		return nil
	}
	if reason != nil {
		a.say("process %d: %v", a.PID, reason)
	}
	a.note(1, "process %d detached", a.PID)
	return nil
}

// exitStatus is how the process ended: from its wait status in launch
// mode (lptrace is its parent), else as /proc showed it while it ended.
func (a *Trace) exitStatus() (int, bool) {
	if a.child != nil {
		a.child.Wait()
		return a.child.Status()
	}
	if a.exit == nil {
		return 0, false
	}
	return a.exit.Status(time.Second)
}

// childExit writes a followed child's "+++ exited with N +++" line (-f)
// once it has ended, after its last events (the ring is read at least
// every few hundred milliseconds). Its status is known while it is a
// zombie (its parent reaps it at once, often), or from its pidfd on Linux
// 6.15+; else the line says "exited", never a guess.
func (a *Trace) childExit(ctx context.Context, pid int, ended *atomic.Bool) {
	w := proc.WatchExit(pid)
	defer w.Close()
	if !w.Wait(ctx.Done()) {
		return
	}
	status, known := w.Exact()
	a.exitsMu.Lock()
	a.exits = append(a.exits, childEnd{pid, status, known})
	a.exitsMu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
		if !ended.Load() {
			a.childExits()
		}
	}
}

// childEnd is how a followed child ended, until its line is written.
type childEnd struct {
	pid, status int
	known       bool
}

// childExits writes the exit lines of the children that ended (-f), also
// at the session's end, before the program's own.
func (a *Trace) childExits() {
	a.exitsMu.Lock()
	defer a.exitsMu.Unlock()
	for _, e := range a.exits {
		a.Output.Exit(e.pid, e.status, e.known)
	}
	a.exits = nil
}

// ErrOutputStalled: lptrace detached on a signal while its output was
// blocked; nothing more can be written there.
var ErrOutputStalled = errors.New("the output is blocked (its reader does not read); detached")

// Why a session's loop stopped, besides Ctrl-C and the reader of the
// output (nil).
var (
	errExited   = errors.New("exited")
	errExecd    = errors.New("exec'd another program")
	errHookGone = errors.New("the hook went away")
	errBadData  = errors.New("bad data from the target")
)

// loop decodes and prints records until ctx ends, the target goes away or
// the reader of the output does; it returns why it stopped (nil for ctx or
// the reader).
func (a *Trace) loop(ctx context.Context, recs <-chan transport.Item, dec *trace.Decoder, emit func(trace.Event), tick <-chan time.Time) error {
	var gone error // the target ended: the pipe is read to its end, a moment at most
	var drainUntil, drainEnd time.Time
	for {
		select {
		case it := <-recs:
			if it.Err != nil {
				if !errors.Is(it.Err, io.EOF) {
					return fmt.Errorf("%w (%v)", errBadData, it.Err)
				}
				// A dying process closes its pipe before it is gone, and a
				// new program shows a moment after the old one closed it.
				for i := 0; i < 20; i++ {
					if r := a.ended(); r != nil {
						return r
					}
					time.Sleep(10 * time.Millisecond)
				}
				return errHookGone
			}
			if gone != nil {
				// a second without data at most, ten in all
				drainUntil = time.Now().Add(time.Second)
				if drainUntil.After(drainEnd) {
					drainUntil = drainEnd
				}
			}
			if err := dec.Decode(it.Rec, emit); err != nil {
				return fmt.Errorf("%w (%v)", errBadData, err)
			}
			if len(recs) == 0 && a.Output.Flush() != nil {
				return nil // the reader of our output went away (| head)
			}
		case <-ctx.Done():
			return nil
		case <-tick:
			steadyLater()
			a.droppedNow.Store(dec.Dropped)
			// Followed children keep the pipe open after the parent exits:
			// the end of the stream tells when the last one is gone.
			if a.follow {
				continue
			}
			if gone == nil {
				// What the program wrote before it ended is still in the
				// pipe (its last burst, up to the pipe's size): read on
				// until the end of the stream. A process that inherited the
				// pipe may hold it open: a second without data at most.
				gone = a.ended()
				drainUntil, drainEnd = time.Now().Add(time.Second), time.Now().Add(10*time.Second)
			} else if time.Now().After(drainUntil) {
				return gone
			}
		}
	}
}

// ended says whether the target exited (errExited) or replaced its
// program by an exec (errExecd), which takes the hook with it; nil if
// neither.
func (a *Trace) ended() error {
	if a.exit != nil {
		a.exit.Note()
	}
	if !proc.Alive(a.PID) {
		return errExited
	}
	if id := proc.ProgramID(a.PID); a.program != "" && id != "" && id != a.program {
		return errExecd
	}
	return nil
}

// hookFD is the descriptor of process pid open on the FIFO (dev, ino): the
// hook's end. -1 if none.
func hookFD(pid int, dev, ino uint64) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(dir+"/"+e.Name(), &st) == nil && st.Dev == dev && st.Ino == ino {
			var fd int
			if _, err := fmt.Sscan(e.Name(), &fd); err == nil {
				return fd
			}
		}
	}
	return -1
}

// waitClosed waits up to limit for process pid to close fd, open on the
// FIFO (dev, ino); false if it still has it open.
func waitClosed(pid, fd int, dev, ino uint64, limit time.Duration) bool {
	path := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	for end := time.Now().Add(limit); ; {
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil || st.Dev != dev || st.Ino != ino {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
