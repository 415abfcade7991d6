package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/lptrace/lptrace/session"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

func pdbFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "tid", Usage: "debug thread `TID` (default: the main thread)"},
		durationFlag("timeout", 10*time.Second, "give up if the thread reaches no safe point within `DURATION`"),
	}
}

func pdbCommand(stdin io.Reader, stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "pdb",
		Usage:        "a pdb prompt inside a running process, here (also: lptrace -d PID)",
		ArgsUsage:    "PID",
		Flags:        pdbFlags(),
		OnUsageError: usageErrors("pdb"),
		Action: onePID("pdb", func(c *cli.Context, pid int) error {
			return runPdb(c, pid, stdin, stdout, stderr)
		}),
	}
}

// runPdb starts a pdb session in a thread of pid. pdb's commands come from
// this terminal (with line editing and history when it is one) and its
// output comes back here.
func runPdb(c *cli.Context, pid int, stdin io.Reader, stdout, stderr io.Writer) error {
	// Ctrl-C, SIGTERM or SIGHUP end the session: closing our ends makes
	// the target's pdb see end-of-input, and it continues.
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	t, err := session.Open(pid, 0, func(m string) { fmt.Fprintf(stderr, "lptrace: %s\n", m) })
	if err != nil {
		return err
	}
	defer t.Close()
	return t.Debug(ctx, c.Int("tid"), durationOf(c, "timeout"), newLineReader(stdin, stdout), stderr)
}

// escapeKeepLines escapes the target's text for a terminal, keeping its
// line breaks and tabs.
func escapeKeepLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = termsafe.Escape([]byte(p), false)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}

// lineReader reads command lines: with editing and history on a terminal
// (golang.org/x/term), plain lines otherwise (a script, a test).
type lineReader struct {
	out  io.Writer
	fd   int
	term *term.Terminal
	br   *bufio.Reader
}

func newLineReader(in io.Reader, out io.Writer) *lineReader {
	r := &lineReader{out: out, fd: -1}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if o, ok := out.(*os.File); ok && term.IsTerminal(int(o.Fd())) {
			r.fd = int(f.Fd())
			r.term = term.NewTerminal(struct {
				io.Reader
				io.Writer
			}{f, o}, "")
			return r
		}
	}
	r.br = bufio.NewReader(in)
	return r
}

// Print writes pdb's output, escaped for a terminal.
func (r *lineReader) Print(s string) { io.WriteString(r.out, escapeKeepLines(s)) }

// ReadLine shows prompt and reads one line. The terminal is raw only while
// a line is typed, so that lptrace never leaves it raw.
func (r *lineReader) ReadLine(prompt string) (string, error) {
	if r.term == nil {
		io.WriteString(r.out, prompt)
		line, err := r.br.ReadString('\n')
		if err != nil && line == "" {
			io.WriteString(r.out, "\n")
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	old, err := term.MakeRaw(r.fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(r.fd, old)
	r.term.SetPrompt(prompt)
	line, err := r.term.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		err = nil
	}
	return line, err
}
