package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"time"

	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/session"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func stackCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "stack",
		Aliases:   []string{"dump"},
		Usage:     "print the Python stack of every thread of a running process",
		ArgsUsage: "PID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "locals", Aliases: []string{"l"}, Usage: "show each frame's local variables"},
			&cli.IntFlag{Name: "s", Value: 32, Usage: "cut values at `N` characters"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show any object with its own repr() (runs the program's code)"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per thread"},
			&cli.BoolFlag{Name: "tasks", Usage: "and the program's asyncio tasks, each with the coroutines it awaits (3.7+)"},
			durationFlag("timeout", 5*time.Second, "give up if no thread reaches a safe point within `DURATION`"),
		},
		OnUsageError: usageErrors("stack"),
		Action: onePID("stack", func(c *cli.Context, pid int) error {
			if c.Int("s") <= 0 {
				return usagef("-s %d: give a positive number of characters", c.Int("s"))
			}
			return runStack(c, pid, stdout, stderr)
		}),
	}
}

func runStack(c *cli.Context, pid int, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	t, err := session.Open(pid, session.DumpPipe, func(m string) { fmt.Fprintf(stderr, "lptrace: %s\n", m) })
	if err != nil {
		return err
	}
	defer t.Close()
	d, err := t.Stack(ctx, session.StackOptions{Locals: c.Bool("locals"), Width: c.Int("s"), Verbose: c.Bool("verbose"), Tasks: c.Bool("tasks"), Timeout: durationOf(c, "timeout")})
	if err != nil {
		return err
	}
	return printStack(stdout, d, c.Bool("json"))
}

// printStack writes a dump as text, or as one JSON object per thread and
// task.
func printStack(stdout io.Writer, d *session.Dump, asJSON bool) error {
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if asJSON {
		var items []any
		for _, t := range d.Threads {
			items = append(items, t)
		}
		for _, t := range d.Tasks {
			items = append(items, t)
		}
		for _, it := range items {
			var b strings.Builder
			e := json.NewEncoder(&b)
			e.SetEscapeHTML(false)
			e.Encode(it)
			w.Write(report.JSONSafe([]byte(b.String())))
		}
		return nil
	}
	for i, t := range d.Threads {
		if i > 0 {
			w.WriteString("\n")
		}
		kind := ""
		if t.Daemon {
			kind = ", daemon"
		}
		state := ""
		if t.State != "" {
			state = ": " + t.State
		}
		if t.TID != 0 {
			fmt.Fprintf(w, "Thread %d (%s%s)%s\n", t.TID, termsafe.Escape([]byte(t.Name), false), kind, state)
		} else { // before 3.8 only the thread's pthread handle is known
			fmt.Fprintf(w, "Thread ident %#x (%s%s)%s\n", t.Ident, termsafe.Escape([]byte(t.Name), false), kind, state)
		}
		for _, f := range t.Frames {
			fmt.Fprintf(w, "  File \"%s\", line %d, in %s\n", termsafe.Escape([]byte(f.File), false), f.Line, termsafe.Escape([]byte(f.Function), false))
			if f.Source != "" {
				fmt.Fprintf(w, "    %s\n", termsafe.Escape([]byte(f.Source), false))
			}
			for _, l := range f.Locals {
				fmt.Fprintf(w, "      %s = %s\n", termsafe.Escape([]byte(l[0]), false), termsafe.Escape([]byte(l[1]), false))
			}
		}
	}
	for _, t := range d.Tasks {
		awaits := ""
		if t.Awaits != "" {
			awaits = ", awaiting " + termsafe.Escape([]byte(t.Awaits), false)
		}
		fmt.Fprintf(w, "\nTask %s (%s%s)\n", termsafe.Escape([]byte(t.Task), false), t.State, awaits)
		for _, f := range t.Frames {
			fmt.Fprintf(w, "  File \"%s\", line %d, in %s\n", termsafe.Escape([]byte(f.File), false), f.Line, termsafe.Escape([]byte(f.Function), false))
			if f.Source != "" {
				fmt.Fprintf(w, "    %s\n", termsafe.Escape([]byte(f.Source), false))
			}
		}
	}
	return nil
}
