package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/session"
	"github.com/lptrace/lptrace/top"
	"github.com/urfave/cli/v2"
)

// lptrace top: py-spy top with exact counts, from the -c table the hook
// keeps inside the program (it costs the program what -c does).
func topCommand(stdout, stderr io.Writer) *cli.Command {
	flags := sinkFlags([]cli.Flag{
		&cli.BoolFlag{Name: "threads", Usage: "rows per thread too (s merges them); costs the program what -T does, not what -c does"},
		durationFlag("interval", time.Second, "refresh every `DURATION`"),
	}, nil)
	return &cli.Command{
		Name:         "top",
		Usage:        "a live view of the hottest functions of running processes: own and total time, calls, calls/s, exceptions",
		ArgsUsage:    "PID...",
		Flags:        flags,
		OnUsageError: usageErrors("top"),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("top: give a PID")
			}
			pids, err := parsePIDs(c.Args().Slice())
			if err != nil {
				return usagef("top: give the PIDs of running processes (top does not start programs)")
			}
			if f := textTraceOption(c, "c", "C", "json", "ff", "T", "indent", "Z", "z", "k", "t", "tt", "ttt", "r", "args", "ret"); f != "" {
				return usagef("top: -%s is an option of the text trace", f)
			}
			if !isTerminal(os.Stdout) || !isTerminal(os.Stdin) {
				return usagef("top needs a terminal; for a table at the end, use: lptrace -c -p PID")
			}
			words := make([]string, len(pids))
			for i, p := range pids {
				words[i] = fmt.Sprint(p)
			}
			t := &topSession{threads: c.Bool("threads"), interval: durationOf(c, "interval"), stdout: stdout,
				title: "process " + strings.Join(words, ", ")}
			return runSessions(c, pids, nil, stderr, t)
		},
	}
}

// topSession runs the screen beside the sessions; the table is the
// printer's (-c's).
type topSession struct {
	threads  bool
	interval time.Duration
	title    string
	stdout   io.Writer
	mu       sync.Mutex
	printer  *report.Printer
	model    *top.Model
	sessionRuns
}

func (t *topSession) options(cfg hook.TraceConfig, opts report.Options) (hook.TraceConfig, report.Options) {
	opts.Trace, opts.Summary, opts.ByThread, opts.Quiet = false, true, t.threads, 2
	cfg.Returns, cfg.Times = true, true
	// Without threads, the hook keeps the table (as -c does).
	cfg.Aggregate = !t.threads
	return cfg, opts
}

func (t *topSession) add(a *session.Trace, p *report.Printer) {
	t.mu.Lock()
	t.printer = p
	t.mu.Unlock()
	t.keep(a)
}

func (t *topSession) snapshot() []report.Row {
	t.mu.Lock()
	p := t.printer
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Snapshot()
}

func (t *topSession) progress(ctx context.Context, cancel context.CancelFunc, stderr io.Writer) func() {
	t.model = top.New(top.Config{Title: t.title, Snapshot: t.snapshot, Dropped: t.dropped, Threads: t.threads, Interval: t.interval})
	screen := top.NewScreen(context.Background(), t.model, os.Stdin, os.Stdout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := screen.Run(); err != nil {
			fmt.Fprintf(stderr, "lptrace: top: %v\n", err)
		}
		cancel() // q, Ctrl-C: the sessions end, the program runs on untraced
	}()
	return func() {
		screen.End()
		<-done
	}
}

func (t *topSession) finish(stderr io.Writer, _ bool) error {
	if t.model != nil {
		fmt.Fprint(t.stdout, t.model.Final(40))
	}
	return nil
}
