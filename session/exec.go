package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/transport"
	"github.com/lptrace/lptrace/wire"
	"golang.org/x/sys/unix"
)

type execRun struct {
	pid            int
	code           []byte
	timeout        time.Duration
	tid            int
	raw, verbose   bool
	stdout, stderr io.Writer
}

func (e *execRun) warn(msg string) { fmt.Fprintf(e.stderr, "lptrace: %s\n", msg) }

// Code is what Exec runs, and where its output goes.
type Code struct {
	Source  []byte
	Timeout time.Duration // for a thread to reach a safe point
	TID     int           // the thread to run it in (0: whichever comes first)
	// Raw: the output as is; else its control characters are escaped.
	Raw, Verbose   bool // Verbose: say how the code reached the interpreter
	Stdout, Stderr io.Writer
}

// Exec runs c.Source in the target's interpreter, at a safe point, and
// copies what it writes to c.Stdout and c.Stderr while it runs. The error is
// ExitCode(1) when the code raised.
func (t *Target) Exec(ctx context.Context, c Code) error {
	e := &execRun{pid: t.PID, code: c.Source, timeout: c.Timeout, tid: c.TID, raw: c.Raw, verbose: c.Verbose, stdout: c.Stdout, stderr: c.Stderr}
	return e.run(ctx, t)
}

func (e *execRun) run(ctx context.Context, t *Target) error {
	ch, tgt, inj := t.ch, t.tgt, t.inj

	// One channel for records and the final error, so that no record is
	// overtaken by the end of the stream.
	recs, started := ch.Stream()

	// The output is printed while the injection is still going on: a
	// direct call returns only once the code has finished, and an output
	// larger than the pipe would otherwise stall the code.
	type injected struct {
		route inject.Route
		err   error
	}
	done := make(chan injected, 1)
	go func() {
		route, err := inj.RunPython(ctx, hook.Exec(ch.Pipe(), e.code), inject.Options{Timeout: e.timeout, Started: started, TID: e.tid, Small: true})
		steady() // the code's output may go on for long
		done <- injected{route, err}
	}()
	var route inject.Route
	injecting := true
	var startBy time.Time
	var result error // the code's exit, once its X record came
	finished := false
	handBack := false // the code ended by a KeyboardInterrupt in the main thread
	// end returns err once the injection is over: the thread is restored
	// and released before lptrace exits.
	gotRoute := func(r inject.Route) {
		route = r
		if e.verbose {
			e.warn(fmt.Sprintf("Python %s: code %s", tgt.Version, route))
		}
	}
	end := func(err error) error {
		if injecting {
			if r := <-done; r.err == nil {
				gotRoute(r.route)
			}
			injecting = false
		}
		return err
	}
	running := false
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	interrupted := ctx.Done()
	for {
		select {
		case r := <-done:
			injecting = false
			if r.err != nil && finished {
				return result // the code ended; letting go of the thread was what failed
			}
			if r.err != nil {
				select {
				case <-started:
					if ctx.Err() != nil {
						return fmt.Errorf("interrupted; the code had started and goes on running in process %d, its output is discarded", e.pid)
					}
				default:
				}
				return explainRun(ctx, e.pid, e.timeout, "the code", r.err)
			}
			gotRoute(r.route)
			interrupted = ctx.Done()
			if finished {
				return e.handBack(handBack, route, result)
			}
			// A direct call has run the code by now: the rest is in the
			// pipe. A pending call runs when the main thread next executes
			// bytecode.
			startBy = time.Now().Add(2 * time.Second)
			if route.Pending {
				startBy = time.Now().Add(e.timeout)
			}
		case it := <-recs:
			if err := it.Err; err != nil {
				if finished {
					result = end(result)
					return e.handBack(handBack, route, result)
				}
				if errors.Is(err, io.EOF) && inj.Execd() {
					return end(fmt.Errorf("process %d exec'd %s while the code ran", e.pid, proc.Executable(e.pid)))
				}
				if errors.Is(err, io.EOF) {
					return end(fmt.Errorf("process %d: the code's output ended before it finished (did the process exit?)", e.pid))
				}
				return end(fmt.Errorf("process %d: reading the code's output: %v", e.pid, err))
			}
			r := it.Rec
			switch r.Kind {
			case wire.ExecStarted:
				running = true
			case wire.ExecStdout:
				if err := e.print(e.stdout, r.Data); err != nil {
					return end(ExitCode(1))
				}
			case wire.ExecStderr:
				e.print(e.stderr, r.Data)
			case wire.ExecDone:
				finished = true
				if string(r.Data) != "0" {
					result = ExitCode(1)
				}
				handBack = string(r.Data) == "1K"
				if !injecting {
					return e.handBack(handBack, route, result)
				}
			default:
				return end(fmt.Errorf("process %d: %v", e.pid, transport.ErrMalformed))
			}
		case <-interrupted:
			if injecting {
				// RunPython stops at once, then done tells what happened.
				interrupted = nil
				continue
			}
			if running {
				return fmt.Errorf("interrupted; the code goes on running in process %d, its output is discarded", e.pid)
			}
			return fmt.Errorf("interrupted; the queued code will not run (process %d)", e.pid)
		case <-tick.C:
			if injecting {
				continue
			}
			if !proc.Alive(e.pid) {
				return fmt.Errorf("process %d exited", e.pid)
			}
			if !running && time.Now().After(startBy) {
				if route.Pending {
					return notReached(e.pid, e.timeout, route, "the code")
				}
				return fmt.Errorf("process %d: the code ran but sent nothing back (is %s writable for the process?)", e.pid, ch.TargetPath)
			}
		}
	}
}

// handBack gives the program back a Ctrl-C that ended the code: a SIGINT,
// now that its main thread is back in its own code. Only when lptrace saw
// that signal arrive while the code ran (the direct route): a
// KeyboardInterrupt the code raised itself is not the program's.
func (e *execRun) handBack(kbd bool, route inject.Route, result error) error {
	if kbd && route.Saw(unix.SIGINT) {
		ptrace.Tgkill(e.pid, e.pid, int(unix.SIGINT))
		e.warn("the program's Ctrl-C that interrupted the code was handed back to it")
	}
	return result
}

func (e *execRun) print(w io.Writer, data []byte) error {
	var err error
	if e.raw {
		_, err = w.Write(data)
	} else {
		_, err = io.WriteString(w, termsafe.Escape(data, true))
	}
	return err
}
