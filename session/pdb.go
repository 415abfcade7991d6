package session

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/transport"
	"github.com/lptrace/lptrace/wire"
)

// Console is where a pdb session's commands come from and its output goes.
type Console interface {
	// Print shows pdb's output: the target's text, not escaped.
	Print(text string)
	// ReadLine shows prompt and reads one command line.
	ReadLine(prompt string) (string, error)
}

// Debug runs a pdb session in thread tid of the target (0: the main
// thread), its commands read from and its output shown on console; the
// target's own stdin and stdout are not used. messages gets lptrace's
// lines. Ctrl-C (ctx) ends the session and the program runs on.
func (t *Target) Debug(ctx context.Context, tid int, timeout time.Duration, console Console, messages io.Writer) error {
	pid, st, ch, stderr := t.PID, t.st, t.ch, messages
	if t.tgt.FreeThreaded() {
		// Each class that pdb's import makes stops every thread there, until
		// each reaches a safe point: beside threads that compute, seconds
		// (docs/design.md); the thread pdb runs in waits meanwhile.
		fmt.Fprintf(messages, "lptrace: note: process %d runs a free-threaded CPython %s: pdb's first start there can take seconds beside threads that compute (its import stops them all for each class it makes); raise --timeout if it gives up\n", pid, t.tgt.Version)
	}
	if tid == 0 {
		tid = pid
	}
	in, inPipe, err := ch.AddInput(st.UID[1], st.GID[1])
	if err != nil {
		return fmt.Errorf("process %d: %v", pid, err)
	}
	recs, started := ch.Stream()
	if _, err := t.inj.RunPython(ctx, hook.Pdb(ch.Pipe(), inPipe), inject.Options{Timeout: timeout, Started: started, TID: tid, Small: true}); err != nil {
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
			console.Print(text)
		case wire.PdbPrompt:
			line, err := console.ReadLine("(Pdb) ")
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
