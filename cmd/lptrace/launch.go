package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/launch"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/transport"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// launchMode tells whether the command line gave a program to start after
// `--` (lptrace [options] -- python3 app.py).
func launchMode(c *cli.Context) bool {
	v, _ := c.App.Metadata["launch"].(bool)
	return v
}

// diedBySignal is the end of a launched program killed by a signal: lptrace
// dies by the same signal, as strace does.
type diedBySignal unix.Signal

func (d diedBySignal) Error() string { return fmt.Sprintf("killed by %v", unix.Signal(d)) }

// runLaunch starts argv, traces it from its first Python call until it
// exits (or --duration ends the tracing), and returns its exit status.
//
// Ctrl-C on the terminal reaches the program, which is in lptrace's process
// group: lptrace ignores it and goes on tracing until the program has
// handled it. SIGTERM and SIGHUP sent to lptrace are passed on.
func runLaunch(traceCtx context.Context, argv []string, lo launch.Options, newRun func(pid int) *attachRun, stderr io.Writer) error {
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
			return diedBySignal(ended.Signal)
		}
		return exitCode(ended.Status)
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
	if err := a.launched(ctx, child); errors.Is(err, errOutputStalled) {
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
		return diedBySignal(sig)
	}
	if status != 0 {
		return exitCode(status)
	}
	return nil
}

// launched installs the hook in a program launch.Start stopped before its
// first Python call, lets it go, and prints the events until it exits.
func (a *attachRun) launched(ctx context.Context, child *launch.Child) error {
	if child.Target.FreeThreaded() {
		child.Detach()
		return fmt.Errorf("%v; it runs untraced", errFreeThreaded(child.PID, child.Target.Version))
	}
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
	case <-time.After(a.timeout):
		return fmt.Errorf("process %d: the hook did not start; it runs untraced", child.PID)
	}
	a.program = child.Target.Program
	a.note(1, "process %d started (Python %s)", child.PID, child.Target.Version)
	a.warnFollow(child.Target.Version)
	return a.stream(ctx, ch, recs, func() {})
}

// launchOptions reads strace's -E (VAR=VAL sets, VAR removes) and -u USER,
// which apply to a launched program only.
func launchOptions(c *cli.Context, launching bool) (launch.Options, error) {
	var o launch.Options
	env, name := c.StringSlice("E"), c.String("u")
	if !launching {
		if len(env) > 0 || name != "" {
			return o, usagef("-E and -u apply to a program lptrace starts (lptrace [options] -- python3 app.py)")
		}
		return o, nil
	}
	if len(env) > 0 {
		vars := map[string]string{}
		var order []string
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if _, seen := vars[k]; !seen {
				order = append(order, k)
			}
			vars[k] = v
		}
		for _, e := range env {
			k, v, set := strings.Cut(e, "=")
			if k == "" {
				return o, usagef("-E %q: give VAR=VALUE, or VAR to remove it", e)
			}
			if _, seen := vars[k]; !seen && set {
				order = append(order, k)
			}
			if set {
				vars[k] = v
			} else {
				delete(vars, k)
			}
		}
		o.Env = []string{}
		for _, k := range order {
			if v, ok := vars[k]; ok {
				o.Env = append(o.Env, k+"="+v)
			}
		}
	}
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			if id, aerr := strconv.Atoi(name); aerr == nil {
				u, err = user.LookupId(strconv.Itoa(id))
			}
		}
		if err != nil {
			return o, usagef("-u %s: no such user", name)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					cred.Groups = append(cred.Groups, uint32(n))
				}
			}
		}
		o.User = cred
	}
	return o, nil
}
