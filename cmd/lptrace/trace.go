package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/session"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func parsePID(s string) (int, error) {
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || pid <= 0 {
		return 0, usagef("%q is not a process ID", s)
	}
	return pid, nil
}

// onePID is the action of a command taking one PID.
func onePID(name string, run func(c *cli.Context, pid int) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usagef("%s: give one PID", name)
		}
		pid, err := parsePID(c.Args().First())
		if err != nil {
			return err
		}
		return run(c, pid)
	}
}

// usageErrors prefixes a command's option errors with its name.
func usageErrors(name string) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		return usagef("%s: %v", name, err)
	}
}

func attachCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "attach",
		Usage:        "show every Python function call of running processes, live (also: lptrace -p PID)",
		ArgsUsage:    "PID...",
		Flags:        traceFlags(),
		OnUsageError: usageErrors("attach"),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("attach: give a PID")
			}
			pids, err := parsePIDs(c.Args().Slice())
			if err != nil {
				return err
			}
			return runTrace(c, pids, nil, stderr)
		},
	}
}

// parsePIDs reads PIDs given as separate arguments, or several in one
// ("1 2 3", "1,2,3"), as strace's -p takes them.
func parsePIDs(args []string) ([]int, error) {
	var pids []int
	for _, a := range args {
		for _, f := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			pid, err := parsePID(f)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) == 0 {
		return nil, usagef("give a PID")
	}
	return pids, nil
}

// runTrace traces pids (attached), or the program launch starts, until
// Ctrl-C, --duration, or the end of every target; then prints the summary
// if asked.
func runTrace(c *cli.Context, pids []int, launch []string, stderr io.Writer) error {
	return runSessions(c, pids, launch, stderr, nil)
}

// sessionSink is what takes a session's events instead of the text or
// JSON trace: a recording (lptrace record), the top screen.
type sessionSink interface {
	// options adjusts what the hook records and the printer does.
	options(hook.TraceConfig, report.Options) (hook.TraceConfig, report.Options)
	// add is told of each session (each process attached).
	add(a *session.Trace, p *report.Printer)
	// progress runs beside the sessions (cancel ends them); the function
	// it returns stops it.
	progress(ctx context.Context, cancel context.CancelFunc, stderr io.Writer) func()
	// finish ends it, once every session has; failed: they ended in an
	// error.
	finish(stderr io.Writer, failed bool) error
}

// runSessions is runTrace; with rec, the events go to rec, not to the
// text or JSON trace, and -o is rec's.
func runSessions(c *cli.Context, pids []int, launch []string, stderr io.Writer, rec sessionSink) error {
	out, outFile := stderr, os.Stderr
	if c.Bool("json") && rec == nil {
		// JSON Lines for a program to read: on stdout, apart from
		// lptrace's own messages (stderr), unless -o says where.
		out, outFile = os.Stdout, os.Stdout
	}
	// Write-only: opened read-write (os.Create), a FIFO would have lptrace
	// as a reader of its own output, so it would never see its reader go
	// away.
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if c.Bool("A") {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	split := c.Bool("ff") && c.String("output") != "" && rec == nil // -ff -o FILE: FILE.PID per process
	if name := c.String("output"); name != "" && !split && rec == nil {
		f, err := os.OpenFile(name, mode, 0o666)
		if err != nil {
			return fmt.Errorf("cannot write the trace: %v", err)
		}
		defer f.Close()
		out, outFile = f, f
	}
	cfg, opts, err := traceOptions(c, outFile)
	if err != nil {
		return err
	}
	if rec != nil {
		cfg, opts = rec.options(cfg, opts)
	}
	lo, err := launchOptions(c, launch != nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	duration := durationOf(c, "duration")
	if duration > 0 && launch != nil {
		// From the launch on: the program is traced from its start.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	printer := report.NewPrinter(out, opts)
	if split {
		printer.Split(func(pid int) (io.WriteCloser, error) {
			return os.OpenFile(fmt.Sprintf("%s.%d", c.String("output"), pid), mode, 0o666)
		})
		defer printer.Close()
	} else if len(pids) > 1 {
		printer.ShowPID()
	}
	newRun := func(pid int) *session.Trace {
		a := &session.Trace{PID: pid, Timeout: durationOf(c, "timeout"), Duration: duration, Config: cfg, Output: printer, Messages: stderr,
			ToFile: c.String("output") != "" && rec == nil, Quiet: opts.Quiet}
		if rec != nil {
			rec.add(a, printer)
		}
		return a
	}
	var status error
	stopProgress := func() {}
	if rec != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stopProgress = sync.OnceFunc(rec.progress(ctx, cancel, stderr))
		defer stopProgress()
	}
	if launch != nil {
		status = session.Launch(ctx, launch, lo, newRun, stderr)
	} else {
		errs := make([]error, len(pids))
		var wg sync.WaitGroup
		for i, pid := range pids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = newRun(pid).Run(ctx)
			}()
		}
		wg.Wait()
		status = errors.Join(errs...)
	}
	if errors.Is(status, session.ErrOutputStalled) {
		// Every target is detached; a write now could block for good, and
		// stderr may be that same pipe: say it without waiting for it.
		go fmt.Fprintf(os.Stderr, "lptrace: %v\n", session.ErrOutputStalled)
		time.Sleep(100 * time.Millisecond)
		os.Exit(1)
	}
	werr := printer.Flush()
	if rec != nil {
		stopProgress()
		if err := rec.finish(stderr, status != nil); err != nil && status == nil {
			return err
		}
		return status
	}
	// A session that failed before any event (refused, no safe point) has
	// no table to show: its one line says why.
	if opts.Summary && werr == nil && (status == nil || len(printer.Snapshot()) > 0) {
		werr = printer.WriteSummary(out, printer.Dropped())
	}
	// A reader that went away (| head) ends the trace as strace's does;
	// any other write error (a full disk, -o /dev/full) is the user's to
	// know: the trace is incomplete.
	if werr != nil && !errors.Is(werr, unix.EPIPE) && status == nil {
		name := c.String("output")
		if name == "" {
			name = "stderr"
		}
		return fmt.Errorf("cannot write the trace to %s: %v; the trace is incomplete", name, unwrapPathError(werr))
	}
	return status
}

// unwrapPathError drops the "write FILE:" of an *os.PathError, which the
// message names already.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
