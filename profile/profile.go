// Package profile turns a session's events into files people look at:
// a flame graph (SVG, or HTML around it), speedscope's evented profiles,
// and the Chrome Trace Event format that Perfetto and chrome://tracing
// open. Each writer gets every call and return with its time (the hook's
// clock), matched into spans per thread; a resumed generator or coroutine
// is a span per turn, so waiting is never counted as running.
package profile

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
)

// Formats are the names --format takes.
var Formats = []string{"flamegraph", "speedscope", "chrometrace", "perfetto"}

// FormatFor is the format a file name implies: flamegraph for .svg and
// .html, chrometrace for .json, speedscope for .speedscope.json, perfetto
// for .pftrace and .perfetto-trace; "" if none.
func FormatFor(name string) string {
	switch n := strings.ToLower(name); {
	case filepath.Ext(n) == ".pftrace", filepath.Ext(n) == ".perfetto-trace":
		return "perfetto"
	case strings.HasSuffix(n, ".speedscope.json"):
		return "speedscope"
	case filepath.Ext(n) == ".svg", filepath.Ext(n) == ".html", filepath.Ext(n) == ".htm":
		return "flamegraph"
	case filepath.Ext(n) == ".json":
		return "chrometrace"
	}
	return ""
}

// Options are what a recording shows.
type Options struct {
	Title   string // what was recorded (the command line, the PIDs)
	Threads bool   // flame graph: a tower per thread, not one merged
	Idle    bool   // flame graph: show the time spent waiting (see isWait)
	HTML    bool   // flame graph: an HTML page around the SVG
}

// Writer receives a session's events and writes its file at Close.
type Writer interface {
	// Event takes one event; safe for several sessions' goroutines.
	Event(trace.Event)
	// Close ends the spans still open at the latest time seen, writes
	// the file, and says what it holds ("1234 calls in 5 threads").
	Close() (string, error)
}

// New makes the writer of format for w.
func New(format string, w io.Writer, opts Options) (Writer, error) {
	var s sink
	switch format {
	case "flamegraph":
		s = newFlame(w, opts)
	case "speedscope":
		s = newSpeedscope(w, opts)
	case "chrometrace":
		s = newChrome(w, opts)
	case "perfetto":
		s = newPerfetto(w, opts)
	default:
		return nil, fmt.Errorf("unknown format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	return &matcher{sink: s, threads: map[*trace.Thread]*threadSpans{}}, nil
}

// sink is what a format does with matched spans, in each thread's order:
// open and close nest properly, and every open is closed by Close.
type sink interface {
	open(t *threadSpans, c *trace.Code, at int64, call bool, args string)
	close(t *threadSpans, c *trace.Code, at int64, ok bool, value string) // value: --ret's
	finish(m *matcher) error
}

// threadSpans is a thread's open spans.
type threadSpans struct {
	proc   *trace.Process
	thread *trace.Thread
	index  int // order of first appearance
	open   []*trace.Code
	first  int64 // its first event's time
	last   int64
}

// matcher pairs calls with returns per thread, as the text trace does: a
// return closes its function's innermost open span and any left open
// above it (their returns were dropped); a return with no open call (made
// before the session) is ignored.
type matcher struct {
	mu      sync.Mutex
	sink    sink
	threads map[*trace.Thread]*threadSpans
	order   []*threadSpans
	first   int64 // the first and latest time seen, any thread
	last    int64
	calls   uint64
}

func (m *matcher) Event(e trace.Event) {
	if e.Clock == 0 || e.Thread == nil || e.Code == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.threads[e.Thread]
	if t == nil {
		t = &threadSpans{proc: e.Proc, thread: e.Thread, index: len(m.order), first: e.Clock}
		m.threads[e.Thread] = t
		m.order = append(m.order, t)
	}
	at := max(e.Clock, t.last) // never back in time within a thread
	t.last = at
	if m.first == 0 || at < m.first {
		m.first = at
	}
	m.last = max(m.last, at)
	switch e.Kind {
	case trace.Call, trace.Resume:
		if e.Kind == trace.Call {
			m.calls++
		}
		args := ""
		if e.Kind == trace.Call && e.HasValue {
			args = e.Value
		}
		t.open = append(t.open, e.Code)
		m.sink.open(t, e.Code, at, e.Kind == trace.Call, args)
	case trace.Return, trace.Exception, trace.Suspend:
		for i := len(t.open) - 1; i >= 0; i-- {
			if t.open[i] != e.Code {
				continue
			}
			for len(t.open) > i+1 {
				m.sink.close(t, t.open[len(t.open)-1], at, true, "")
				t.open = t.open[:len(t.open)-1]
			}
			value := ""
			if e.HasValue && e.Kind != trace.Suspend {
				value = e.Value
			}
			m.sink.close(t, e.Code, at, e.Kind != trace.Exception, value)
			t.open = t.open[:i]
			break
		}
	}
}

func (m *matcher) Close() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.order {
		for len(t.open) > 0 {
			m.sink.close(t, t.open[len(t.open)-1], m.last, true, "")
			t.open = t.open[:len(t.open)-1]
		}
	}
	err := m.sink.finish(m)
	threads := "threads"
	if len(m.order) == 1 {
		threads = "thread"
	}
	return fmt.Sprintf("%d calls in %d %s", m.calls, len(m.order), threads), err
}

// threadLabel names a thread as the text trace does.
func threadLabel(t *threadSpans) string {
	s := fmt.Sprintf("tid %d", t.thread.TID)
	if name := threadName(t); name != "" {
		s += " " + name
	}
	if t.proc != nil {
		s = fmt.Sprintf("pid %d %s", t.proc.PID, s)
	}
	return s
}

// threadName is the thread's Python name; the main thread (its ID is the
// process's) is MainThread even where the hook saw it before threading
// named it.
func threadName(t *threadSpans) string {
	if t.thread.Name == "" && t.proc != nil && t.thread.TID == t.proc.PID {
		return "MainThread"
	}
	return safe(t.thread.Name)
}

// frameName is how a function shows: "qualname (file:line)".
func frameName(c *trace.Code) string {
	return fmt.Sprintf("%s (%s:%d)", safe(c.Name), safe(c.File), c.Line)
}

// safe escapes the program's text (untrusted) as the terminal output
// does: control characters, which XML also forbids, become visible.
func safe(s string) string { return termsafe.Escape([]byte(s), false) }
