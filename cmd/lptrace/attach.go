package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
	"github.com/lptrace/lptrace/transport"
	"github.com/urfave/cli/v2"
)

func traceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the trace to `FILE` instead of stderr"},
		&cli.DurationFlag{Name: "duration", Usage: "detach after `DURATION` (default: until Ctrl-C)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up if no thread reaches a safe point within `DURATION`"},
	}
}

func attachCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "show every Python function call of a running process, live (also: lptrace -p PID)",
		ArgsUsage: "PID",
		Flags:     traceFlags(),
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usagef("attach: %v", err)
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("attach: give one PID")
			}
			pid, err := parsePID(c.Args().First())
			if err != nil {
				return err
			}
			return runAttach(c, pid, stderr)
		},
	}
}

func runAttach(c *cli.Context, pid int, stderr io.Writer) error {
	out := stderr
	if name := c.String("output"); name != "" {
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("cannot write the trace: %v", err)
		}
		defer f.Close()
		out = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	a := &attachRun{pid: pid, timeout: c.Duration("timeout"), out: out, stderr: stderr}
	return a.run(ctx)
}

type attachRun struct {
	pid     int
	timeout time.Duration
	out     io.Writer
	stderr  io.Writer
}

func (a *attachRun) say(format string, args ...any) {
	fmt.Fprintf(a.stderr, "lptrace: "+format+"\n", args...)
}

func (a *attachRun) run(ctx context.Context) error {
	st, err := checkTarget(a.pid)
	if err != nil {
		return err
	}
	tgt, err := findPython(a.pid, st, func(m string) { a.say("%s", m) })
	if err != nil {
		return err
	}
	defer tgt.Close()
	ch, err := transport.Create(a.pid, st.UID[1], st.GID[1], 1<<20)
	if err != nil {
		return fmt.Errorf("process %d: %v", a.pid, err)
	}
	defer ch.Close()
	var rnd [8]byte
	rand.Read(rnd[:])
	session := hex.EncodeToString(rnd[:])

	recs, started := ch.Stream()

	tids, _ := proc.Threads(a.pid) // before the hook adds its timer thread
	inj := inject.New(ptrace.NewTracer(), tgt)
	route, err := inj.RunPython(ctx, hook.TraceInstall(ch.Pipe(), session), inject.Options{Timeout: a.timeout, Started: started})
	if err != nil {
		return explainRun(ctx, a.pid, a.timeout, "the hook", err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		return fmt.Errorf("interrupted before the hook started; process %d left as it was", a.pid)
	case <-time.After(a.timeout):
		return fmt.Errorf("process %d: no thread could run Python code within %v: the main thread did not reach the interpreter; the hook will not be installed", a.pid, a.timeout)
	}
	showTID := len(tids) > 1
	a.say("process %d attached (Python %s, %d threads)", a.pid, tgt.Version, len(tids))

	// Before 3.12 each thread that already exists hooks itself: the engine
	// runs the per-thread installer in each one at a safe point, and keeps
	// trying for threads that are busy now.
	hookCtx, stopHooking := context.WithCancel(ctx)
	var hooking sync.WaitGroup
	if !tgt.Version.AtLeast(3, 12) {
		hooked := map[int]bool{route.TID: true}
		if route.Pending {
			hooked[a.pid] = true
		}
		hooking.Add(1)
		go func() {
			defer hooking.Done()
			a.hookThreads(hookCtx, inj, session, hooked, tgt.Version.Major == 2)
		}()
	}
	defer func() {
		stopHooking()
		hooking.Wait()
	}()

	w := bufio.NewWriterSize(a.out, 64<<10)
	var dec trace.Decoder
	var events uint64
	var outErr error
	// Lines are formatted once per function and per thread, not per event:
	// a busy target sends millions of events a second.
	labels := map[*trace.Code]string{}
	prefixes := map[*trace.Thread]string{}
	emit := func(e trace.Event) {
		events++
		if outErr != nil {
			return
		}
		if showTID || dec.Threads() > 1 {
			showTID = true
			p, ok := prefixes[e.Thread]
			if !ok {
				p = fmt.Sprintf("[tid %d] ", e.Thread.TID)
				prefixes[e.Thread] = p
			}
			w.WriteString(p)
		}
		l, ok := labels[e.Code]
		if !ok {
			l = fmt.Sprintf("%s (%s:%d)\n", termsafe.Escape([]byte(e.Code.Name), false), termsafe.Escape([]byte(e.Code.File), false), e.Code.Line)
			labels[e.Code] = l
		}
		w.WriteString(l)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	reason := ""
loop:
	for {
		select {
		case it := <-recs:
			if it.Err != nil {
				if errors.Is(it.Err, io.EOF) {
					reason = "the hook went away"
					if !proc.Alive(a.pid) {
						reason = "exited"
					}
				} else {
					reason = fmt.Sprintf("bad data from the target (%v)", it.Err)
				}
				break loop
			}
			if err := dec.Decode(it.Rec, emit); err != nil {
				reason = fmt.Sprintf("bad data from the target (%v)", err)
				break loop
			}
			if len(recs) == 0 {
				outErr = w.Flush()
			}
			if outErr != nil {
				break loop // the reader of our output went away (| head)
			}
		case <-ctx.Done():
			break loop
		case <-tick.C:
			if !proc.Alive(a.pid) {
				reason = "exited"
				break loop
			}
		}
	}
	w.Flush()
	// Detach: closing the pipe is the signal. The hook sees the broken pipe
	// at its next write (50 ms at most) and removes itself from every
	// thread, exactly as when lptrace dies.
	stopHooking()
	hooking.Wait()
	ch.Close()
	if dec.Dropped > 0 {
		a.say("%d events were dropped (the pipe was full)", dec.Dropped)
	}
	if reason == "exited" {
		a.say("process %d exited", a.pid)
		return nil
	}
	if reason != "" {
		a.say("process %d: %s", a.pid, reason)
	}
	a.say("process %d detached", a.pid)
	return nil
}

// hookThreads installs the per-thread hook in every thread not hooked yet,
// retrying busy threads until ctx ends.
//
// rehookMain: on 2.7 a KeyboardInterrupt delivered at the first instruction
// of the profile function escapes it, and the interpreter then removes the
// main thread's hook; the installer runs there again every round (it does
// nothing when the hook is in place).
func (a *attachRun) hookThreads(ctx context.Context, inj *inject.Injector, session string, hooked map[int]bool, rehookMain bool) {
	src := hook.TraceThread(session)
	never := make(chan struct{})
	for round := 0; ; round++ {
		if rehookMain && round%3 == 2 {
			delete(hooked, a.pid)
		}
		tids, err := proc.Threads(a.pid)
		if err != nil {
			return
		}
		for _, tid := range tids {
			if hooked[tid] || ctx.Err() != nil {
				continue
			}
			if _, err := inj.RunPython(ctx, src, inject.Options{Timeout: 300 * time.Millisecond, Started: never, TID: tid}); err == nil {
				hooked[tid] = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
