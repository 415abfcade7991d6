package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/profile"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/session"
	"github.com/lptrace/lptrace/trace"
	"github.com/urfave/cli/v2"
)

// lptrace record: like py-spy record, with every call's exact time
// instead of samples, into a flame graph, speedscope or a Chrome/Perfetto
// trace.
func recordCommand(stdout, stderr io.Writer) *cli.Command {
	flags := sinkFlags([]cli.Flag{
		&cli.StringFlag{Name: "format", Aliases: []string{"F"}, Usage: "`FORMAT` of the file: " + strings.Join(profile.Formats, ", ") +
			" (default: from -o's name: .svg/.html a flame graph, .speedscope.json speedscope, .json a Chrome trace, .pftrace Perfetto's)"},
		&cli.BoolFlag{Name: "threads", Usage: "flame graph: a tower per thread (default: all threads merged)"},
		&cli.BoolFlag{Name: "idle", Usage: "flame graph: show the time spent waiting in the standard library's blocking calls (locks, conditions, select, accept, join)"},
	}, &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the recording to `FILE` (required)"})
	return &cli.Command{
		Name:         "record",
		Usage:        "record every call with its exact time into a flame graph, speedscope or Chrome/Perfetto trace file",
		ArgsUsage:    "-o FILE [--format F] (PID... | -- python3 app.py ARGS...)",
		Flags:        flags,
		OnUsageError: usageErrors("record"),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("record: give a PID, or -- and a program to start")
			}
			rec, err := newRecording(c)
			if err != nil {
				return err
			}
			if pids, err := parsePIDs(c.Args().Slice()); err == nil {
				return runSessions(c, pids, nil, stderr, rec)
			}
			return runSessions(c, nil, c.Args().Slice(), stderr, rec)
		},
	}
}

// recording is a record session's file and its progress.
type recording struct {
	path   string
	format string
	file   *os.File
	w      profile.Writer
	events atomic.Uint64
	start  time.Time
	sessionRuns
}

func newRecording(c *cli.Context) (*recording, error) {
	path := c.String("output")
	if path == "" {
		return nil, usagef("record: give the file to write with -o FILE")
	}
	if f := textTraceOption(c, "c", "C", "json", "ff", "T", "indent", "Z", "z", "k"); f != "" {
		return nil, usagef("record: -%s is an option of the text trace; a recording holds every call and its time", f)
	}
	format := c.String("format")
	if format == "" {
		if format = profile.FormatFor(path); format == "" {
			return nil, usagef("record: say which format %s is with --format (%s)", path, strings.Join(profile.Formats, ", "))
		}
	}
	opts := profile.Options{Threads: c.Bool("threads"), Idle: c.Bool("idle"), HTML: strings.HasSuffix(strings.ToLower(path), ".html") || strings.HasSuffix(strings.ToLower(path), ".htm")}
	opts.Title = strings.Join(os.Args[1:], " ")
	if _, err := profile.New(format, io.Discard, opts); err != nil {
		return nil, usagef("record: %v", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot write the recording: %v", err)
	}
	w, _ := profile.New(format, f, opts)
	return &recording{path: path, format: format, file: f, w: w, start: time.Now()}, nil
}

// options are the hook's and printer's options for a recording: calls,
// returns and their times, no text trace.
func (r *recording) options(cfg hook.TraceConfig, opts report.Options) (hook.TraceConfig, report.Options) {
	cfg.Returns, cfg.Times, cfg.Aggregate = true, true, false
	opts.Trace, opts.Summary = false, false
	return cfg, opts
}

func (r *recording) add(a *session.Trace, _ *report.Printer) {
	a.Sink = r.event
	r.keep(a)
}

func (r *recording) event(e trace.Event) {
	r.events.Add(1)
	r.w.Event(e)
}

// sessionRuns keeps a sink's sessions, for what they dropped so far.
type sessionRuns struct {
	mu   sync.Mutex
	runs []*session.Trace
}

func (s *sessionRuns) keep(a *session.Trace) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, a)
}

func (s *sessionRuns) dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, a := range s.runs {
		n += a.Dropped()
	}
	return n
}

// progress shows on a terminal, once a second, what the recording holds;
// nothing when stderr is not one. The returned function ends it.
func (r *recording) progress(ctx context.Context, _ context.CancelFunc, stderr io.Writer) func() {
	f, ok := stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\x1b[K")
				return
			case <-ctx.Done():
			case <-t.C:
				fmt.Fprintf(f, "\r\x1b[Klptrace: recording to %s: %d events, %d dropped, %s", r.path, r.events.Load(), r.dropped(),
					time.Since(r.start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// finish writes the file (whatever ended the session: Ctrl-C, the
// program's death) and says what it holds; a session that failed before
// any event (refused, no safe point) leaves no file.
func (r *recording) finish(stderr io.Writer, failed bool) error {
	if failed && r.events.Load() == 0 {
		r.file.Close()
		os.Remove(r.path)
		return nil
	}
	what, err := r.w.Close()
	if cerr := r.file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write the recording to %s: %v", r.path, unwrapPathError(err))
	}
	fmt.Fprintf(stderr, "lptrace: wrote %s (%s): %s\n", r.path, r.format, what)
	return nil
}
