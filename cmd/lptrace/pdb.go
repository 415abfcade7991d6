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

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/transport"
	"github.com/lptrace/lptrace/wire"
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
// output comes back here; the target's own stdin/stdout are not used.
func runPdb(c *cli.Context, pid int, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := openTarget(pid, 0, func(m string) { fmt.Fprintf(stderr, "lptrace: %s\n", m) })
	if err != nil {
		return err
	}
	defer o.Close()
	st, ch := o.st, o.ch
	tid := c.Int("tid")
	if tid == 0 {
		tid = pid
	}
	in, inPipe, err := ch.AddInput(st.UID[1], st.GID[1])
	if err != nil {
		return fmt.Errorf("process %d: %v", pid, err)
	}
	// Ctrl-C, SIGTERM or SIGHUP end the session: closing our ends makes
	// the target's pdb see end-of-input, and it continues.
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	recs, started := ch.Stream()
	timeout := durationOf(c, "timeout")
	if _, err := o.inj.RunPython(ctx, hook.Pdb(ch.Pipe(), inPipe), inject.Options{Timeout: timeout, Started: started, TID: tid}); err != nil {
		return explainRun(ctx, pid, timeout, "pdb", err)
	}
	steady() // a session that may last
	select {
	case <-started:
	case <-ctx.Done():
		return fmt.Errorf("interrupted before pdb started; process %d left as it was", pid)
	case <-time.After(timeout):
		return fmt.Errorf("process %d: pdb did not start within %v", pid, timeout)
	}
	reader := newLineReader(stdin, stdout)
	for {
		var it transport.Item
		select {
		case it = <-recs:
		case <-ctx.Done():
			fmt.Fprintf(stderr, "\nlptrace: session ended; process %d runs on\n", pid)
			return nil
		}
		if it.Err != nil {
			if !proc.Alive(pid) {
				return fmt.Errorf("process %d exited", pid)
			}
			fmt.Fprintf(stderr, "lptrace: the session ended; process %d runs on\n", pid)
			return nil
		}
		text := string(it.Rec.Data)
		switch it.Rec.Kind {
		case wire.PdbStarted:
			f := strings.SplitN(text, "\t", 3)
			for len(f) < 3 {
				f = append(f, "")
			}
			fmt.Fprintf(stderr, "lptrace: pdb in process %d, thread %d (%s), in %s; it stops at the thread's next line; c, q or Ctrl-D end the session\n",
				pid, tid, termsafe.Escape([]byte(f[1]), false), termsafe.Escape([]byte(f[2]), false))
		case wire.PdbOutput:
			reader.Print(escapeKeepLines(text))
		case wire.PdbPrompt:
			line, err := reader.ReadLine("(Pdb) ")
			if err != nil {
				line = "q" // Ctrl-D, Ctrl-C, end of input: leave the program running
			}
			if _, err := io.WriteString(in, line+"\n"); err != nil {
				return fmt.Errorf("process %d: %v", pid, err)
			}
		case wire.PdbDone:
			fmt.Fprintf(stderr, "lptrace: session ended; process %d runs on\n", pid)
			return nil
		case wire.PdbFailed:
			return fmt.Errorf("process %d, thread %d: %s", pid, tid, text)
		}
	}
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

// Print writes pdb's output.
func (r *lineReader) Print(s string) { io.WriteString(r.out, s) }

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
