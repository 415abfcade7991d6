package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/launch"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/transport"
	"golang.org/x/sys/unix"
)

// DiedBySignal is the end of a launched program killed by a signal: lptrace
// dies by the same signal, as strace does.
type DiedBySignal unix.Signal

func (d DiedBySignal) Error() string { return fmt.Sprintf("killed by %v", unix.Signal(d)) }

// ExitCode is an error that carries an exit status and has already been
// reported (or needs no message): a launched program's, or exec's 1 when
// the code raised.
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Launch starts argv, traces it from its first Python call until it
// exits (or --duration ends the tracing), and returns its exit status.
//
// Ctrl-C on the terminal reaches the program, which is in lptrace's process
// group: lptrace ignores it and goes on tracing until the program has
// handled it. SIGTERM and SIGHUP sent to lptrace are passed on.
func Launch(traceCtx context.Context, argv []string, lo launch.Options, newRun func(pid int) *Trace, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find lptrace's own executable: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if d, ok := traceCtx.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, d) // --duration
		defer cancel()
	}
	say := func(m string) { fmt.Fprintf(stderr, "lptrace: %s\n", m) }
	child, err := launch.Start(context.Background(), self, argv, lo)
	var ended launch.ErrEnded
	if errors.As(err, &ended) {
		if ended.Status != 127 {
			say(err.Error())
		}
		if ended.Signal != 0 {
			return DiedBySignal(ended.Signal)
		}
		return ExitCode(ended.Status)
	}
	if err != nil {
		return err
	}
	go func() {
		for s := range sigs {
			if s != unix.SIGINT {
				child.Signal(s)
			}
		}
	}()
	a := newRun(child.PID)
	if err := a.launched(ctx, child); errors.Is(err, ErrOutputStalled) {
		// stderr may be that same blocked pipe: nothing more is written.
		// The program runs on, detached, to its own end.
		os.Exit(1)
	} else if err != nil {
		say(err.Error())
	}
	status, sig, err := child.Wait()
	if err != nil {
		return fmt.Errorf("cannot get the exit status of %s: %w", argv[0], err)
	}
	if sig != 0 {
		return DiedBySignal(sig)
	}
	if status != 0 {
		return ExitCode(status)
	}
	return nil
}

// launched installs the hook in a program launch.Start stopped before its
// first Python call, lets it go, and prints the events until it exits.
func (a *Trace) launched(ctx context.Context, child *launch.Child) error {
	st, err := proc.ReadStatus(child.PID)
	if err != nil {
		child.Detach()
		return err
	}
	ch, err := transport.Create(child.PID, st.UID[1], st.GID[1], transport.EventPipeSize)
	if err != nil {
		child.Detach()
		return fmt.Errorf("process %d: %w; it runs untraced", child.PID, err)
	}
	defer ch.Close()
	a.child = child
	a.addRing(ch, st.UID[1], st.GID[1])
	recs, started := ch.Stream()
	session := newSession()
	// The source: the one injection, at the program's first line, cannot
	// be sent again should the precompiled code not suit the interpreter.
	code, _ := hook.TraceInstall(ch.Pipe(), session, a.hookConfig(child.Target.Version), minorVersion(child.Target.Version), hook.Source)
	if err := child.RunPython(ctx, code); err != nil {
		child.Detach()
		return fmt.Errorf("process %d: the hook could not be installed (%w); it runs untraced", child.PID, err)
	}
	select {
	case <-started:
	case <-time.After(a.Timeout):
		return fmt.Errorf("process %d: the hook did not start; it runs untraced", child.PID)
	}
	a.program = child.Target.Program
	a.note(1, "process %d started (Python %s)", child.PID, child.Target.Version)
	a.warnFollow(child.Target.Version)
	return a.stream(ctx, ch, recs, func() {})
}
