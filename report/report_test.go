package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lptrace/lptrace/trace"
)

// The printer keys its call stacks by *trace.Thread, so every event of one
// test thread must carry the same pointer: these are shared and never
// modified.
var (
	testProc   = &trace.Process{PID: 100}
	testThread = &trace.Thread{TID: 101, Name: "MainThread"}
	outer      = &trace.Code{Name: "outer", File: "app.py", Line: 1, Module: "app"}
	inner      = &trace.Code{Name: "inner", File: "app.py", Line: 5, Module: "app"}
	other      = &trace.Code{Name: "other", File: "app.py", Line: 9, Module: "app"}
)

// ms is a millisecond on the hook's nanosecond clock. Clock 0 means "no
// times", so test clocks start at 1s.
const ms = int64(time.Millisecond)

func at(k trace.Kind, c *trace.Code, clock int64) trace.Event {
	return trace.Event{Proc: testProc, Thread: testThread, Code: c, Kind: k, Clock: clock}
}

func call(c *trace.Code, clock int64) trace.Event { return at(trace.Call, c, clock) }

func ret(c *trace.Code, clock int64) trace.Event { return at(trace.Return, c, clock) }

func exc(c *trace.Code, clock int64) trace.Event { return at(trace.Exception, c, clock) }

// with gives e a value: call arguments, return value or exception.
func with(e trace.Event, v string) trace.Event {
	e.Value, e.HasValue = v, true
	return e
}

// run feeds events to a new printer and returns what it wrote.
func run(t *testing.T, opts Options, events ...trace.Event) string {
	t.Helper()
	var b bytes.Buffer
	p := NewPrinter(&b, opts)
	for _, e := range events {
		p.Event(e)
	}
	if err := p.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return b.String()
}

// nested is outer -> inner returning 42 after 2ms, then outer raising
// ValueError('bad') 10ms after it started.
func nested() []trace.Event {
	return []trace.Event{
		call(outer, 1000*ms),
		call(inner, 1001*ms),
		with(ret(inner, 1003*ms), "42"),
		with(exc(outer, 1010*ms), "ValueError('bad')"),
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"default: calls only", Options{Trace: true},
			"outer (app.py:1)\ninner (app.py:5)\n"},
		{"indent without return events", Options{Trace: true, Indent: true},
			"outer (app.py:1)\n  inner (app.py:5)\n"},
		{"returns", Options{Trace: true, Returns: true},
			"outer (app.py:1)\ninner (app.py:5)\n<- inner = 42\n<- outer = ! ValueError('bad')\n"},
		{"durations: the exception shows, the value does not", Options{Trace: true, Durations: true},
			"outer (app.py:1)\ninner (app.py:5)\n<- inner <0.002000>\n<- outer = ! ValueError('bad') <0.010000>\n"},
		{"indent, durations, returns", Options{Trace: true, Indent: true, Durations: true, Returns: true},
			"outer (app.py:1)\n  inner (app.py:5)\n  <- inner = 42 <0.002000>\n<- outer = ! ValueError('bad') <0.010000>\n"},
		{"trace off (-c alone)", Options{Summary: true, Durations: true, Returns: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, tt.opts, nested()...); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestExceptionWithoutValue(t *testing.T) {
	got := run(t, Options{Trace: true, Returns: true}, call(outer, 1000*ms), exc(outer, 1001*ms))
	if want := "outer (app.py:1)\n<- outer = ! exception\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestUnmatchedReturns(t *testing.T) {
	opts := Options{Trace: true, Indent: true, Durations: true, Returns: true}
	tests := []struct {
		name   string
		events []trace.Event
		want   string
	}{
		{
			// Attached while "outer" ran: its return has no call.
			"return with no call",
			[]trace.Event{with(ret(outer, 1000*ms), "None")},
			"<- outer = None\n",
		},
		{
			// Still no call seen, even with other frames on the stack: depth
			// 0, no duration, and the stack is left alone.
			"return with no call above a known frame",
			[]trace.Event{
				call(inner, 1000*ms),
				with(ret(outer, 1001*ms), "None"),
				with(ret(inner, 1002*ms), "1"),
			},
			"inner (app.py:5)\n<- outer = None\n<- inner = 1 <0.002000>\n",
		},
		{
			// inner's return was lost: outer's return pops it too, and the
			// next call is at depth 0 again.
			"lost return of an inner frame",
			[]trace.Event{
				call(outer, 1000*ms),
				call(inner, 1001*ms),
				with(ret(outer, 1004*ms), "1"),
				call(other, 1005*ms),
			},
			"outer (app.py:1)\n  inner (app.py:5)\n<- outer = 1 <0.004000>\nother (app.py:9)\n",
		},
		{
			// Times not asked (Clock 0): no duration rather than a made-up one.
			"no clock",
			[]trace.Event{call(outer, 0), with(ret(outer, 0), "1")},
			"outer (app.py:1)\n<- outer = 1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, opts, tt.events...); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		value string
		want  string
	}{
		{"a=1\tb='x'", "outer(a=1, b='x') (app.py:1)\n"},
		{"", "outer() (app.py:1)\n"},
		{"s='\x1b[2J'", `outer(s='\x1b[2J') (app.py:1)` + "\n"},
	}
	for _, tt := range tests {
		if got := run(t, Options{Trace: true, Args: true}, with(call(outer, 0), tt.value)); got != tt.want {
			t.Errorf("args %q: got %q, want %q", tt.value, got, tt.want)
		}
	}
}

func TestOnlyErrors(t *testing.T) {
	events := []trace.Event{
		with(call(outer, 1000*ms), "a=1"),
		with(call(inner, 1001*ms), "x=2"),
		with(ret(inner, 1002*ms), "3"), // succeeded: not shown
		with(exc(outer, 1003*ms), "ValueError('bad')"),
		// An exception whose call we did not see: no arguments to show.
		with(exc(other, 1004*ms), "KeyError(1)"),
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"-Z", Options{Trace: true, OnlyErrors: true},
			"outer(a=1) = ! ValueError('bad') (app.py:1)\nother() = ! KeyError(1) (app.py:9)\n"},
		{"-Z -T", Options{Trace: true, OnlyErrors: true, Durations: true},
			"outer(a=1) = ! ValueError('bad') <0.003000> (app.py:1)\nother() = ! KeyError(1) (app.py:9)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, tt.opts, events...); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if got := run(t, Options{Trace: true, OnlyErrors: true}, call(outer, 1000*ms), with(ret(outer, 1001*ms), "1")); got != "" {
		t.Errorf("-Z printed a successful call: %q", got)
	}
}

func TestTimeFormats(t *testing.T) {
	// t.Format uses the Time's location: UTC keeps the test independent of
	// the machine's zone. 1700000000 is 2023-11-14 22:13:20 UTC.
	t0 := time.Unix(1700000000, 123456).UTC()
	e1, e2 := call(outer, 0), call(inner, 0)
	e1.Time, e2.Time = t0, t0.Add(1500*time.Microsecond)
	tests := []struct {
		format TimeFormat
		want   string
	}{
		{NoTime, "outer (app.py:1)\ninner (app.py:5)\n"},
		{Clock, "22:13:20 outer (app.py:1)\n22:13:20 inner (app.py:5)\n"},
		{ClockUsec, "22:13:20.000123 outer (app.py:1)\n22:13:20.001623 inner (app.py:5)\n"},
		{Epoch, "1700000000.000123 outer (app.py:1)\n1700000000.001623 inner (app.py:5)\n"},
		{Relative, "    0.000000 outer (app.py:1)\n    0.001500 inner (app.py:5)\n"},
	}
	for _, tt := range tests {
		if got := run(t, Options{Trace: true, Time: tt.format}, e1, e2); got != tt.want {
			t.Errorf("format %d: got\n%q\nwant\n%q", tt.format, got, tt.want)
		}
	}
	// An event without a wall time gets no timestamp rather than year 1.
	if got := run(t, Options{Trace: true, Time: ClockUsec}, call(outer, 0)); got != "outer (app.py:1)\n" {
		t.Errorf("zero time: got %q", got)
	}
}

func TestPIDTIDPrefix(t *testing.T) {
	for _, tt := range []struct {
		pid, tid bool
		want     string
	}{
		{false, false, "outer (app.py:1)\n"},
		{true, false, "[pid 100] outer (app.py:1)\n"},
		{false, true, "[tid 101 MainThread] outer (app.py:1)\n"},
		{true, true, "[pid 100] [tid 101 MainThread] outer (app.py:1)\n"},
	} {
		var b bytes.Buffer
		p := NewPrinter(&b, Options{Trace: true})
		if tt.pid {
			p.ShowPID()
		}
		if tt.tid {
			p.ShowTID()
		}
		p.Event(call(outer, 0))
		p.Flush()
		if b.String() != tt.want {
			t.Errorf("pid %v tid %v: got %q, want %q", tt.pid, tt.tid, b.String(), tt.want)
		}
	}
}

// A program traced from its start with one thread: the [tid N] prefixes
// come once a second thread of the process shows up (not for one more
// process: that is [pid N]'s business).
func TestTIDPrefixOnSecondThread(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, Options{Trace: true})
	p.ShowPID()
	second := &trace.Thread{TID: 102, Name: "worker"}
	otherProc, otherThread := &trace.Process{PID: 200}, &trace.Thread{TID: 200}
	p.Event(call(outer, 0))
	e := call(inner, 0)
	e.Proc, e.Thread = otherProc, otherThread
	p.Event(e)
	p.Event(call(outer, 0))
	e = call(other, 0)
	e.Thread = second
	p.Event(e)
	p.Event(call(outer, 0))
	p.Flush()
	want := "[pid 100] outer (app.py:1)\n[pid 200] inner (app.py:5)\n[pid 100] outer (app.py:1)\n" +
		"[pid 100] [tid 102 worker] other (app.py:9)\n[pid 100] [tid 101 MainThread] outer (app.py:1)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// evil is a function whose name and file try to drive the terminal and to
// forge a line of their own.
var evil = &trace.Code{Name: "evil\x1b[31m\nname", File: "a\x1b]0;t\x07.py", Line: 3, Module: "m\x1b"}

func evilEvents() []trace.Event {
	return []trace.Event{
		with(call(evil, 1000*ms), "a='\x1b[2J'\tb='\n'"),
		with(ret(evil, 1001*ms), "'\x1b[0m\r'"),
		with(call(evil, 1002*ms), ""),
		with(exc(evil, 1003*ms), "ValueError('\x1b\n')"),
	}
}

func TestEscaping(t *testing.T) {
	all := Options{Trace: true, Args: true, Returns: true, Durations: true, Indent: true}
	tests := []struct {
		name  string
		opts  Options
		lines int
	}{
		{"default", Options{Trace: true}, 2},
		{"all", all, 4},
		{"-Z", Options{Trace: true, OnlyErrors: true, Args: true}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, tt.opts, evilEvents()...)
			if strings.IndexByte(out, 0x1b) >= 0 || strings.ContainsAny(out, "\r\a") {
				t.Errorf("control character in output: %q", out)
			}
			// One line per printed event: the name's newline must not start
			// a line of its own.
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != tt.lines {
				t.Errorf("got %d lines, want %d: %q", len(lines), tt.lines, out)
			}
			for _, l := range lines {
				if !strings.Contains(l, `evil\x1b[31m\x0aname`) {
					t.Errorf("line without the escaped name: %q", l)
				}
			}
		})
	}
	out := run(t, all, evilEvents()...)
	want := `evil\x1b[31m\x0aname(a='\x1b[2J', b='\x0a') (a\x1b]0;t\x07.py:3)` + "\n" +
		`<- evil\x1b[31m\x0aname = '\x1b[0m\x0d' <0.001000>` + "\n" +
		`evil\x1b[31m\x0aname() (a\x1b]0;t\x07.py:3)` + "\n" +
		`<- evil\x1b[31m\x0aname = ! ValueError('\x1b\x0a') <0.001000>` + "\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestColor(t *testing.T) {
	const (
		bold, faint, red, reset = "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[0m"
	)
	got := run(t, Options{Trace: true, Returns: true, Color: true}, nested()...)
	want := bold + "outer" + reset + " " + faint + "(app.py:1)" + reset + "\n" +
		bold + "inner" + reset + " " + faint + "(app.py:5)" + reset + "\n" +
		"<- " + bold + "inner" + reset + " = 42\n" +
		"<- " + bold + "outer" + reset + " = " + red + "! ValueError('bad')" + reset + "\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}

	// The target's own escapes are still escaped inside our colours.
	got = run(t, Options{Trace: true, Color: true}, call(evil, 0))
	if want := bold + `evil\x1b[31m\x0aname` + reset + " " + faint + `(a\x1b]0;t\x07.py:3)` + reset + "\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// Without colour, not one escape byte whatever is printed.
	for _, opts := range []Options{
		{Trace: true, Args: true, Returns: true, Durations: true, Indent: true},
		{Trace: true, OnlyErrors: true, Durations: true},
	} {
		if out := run(t, opts, nested()...); strings.IndexByte(out, 0x1b) >= 0 {
			t.Errorf("%+v: escape byte in %q", opts, out)
		}
	}
}

// jsonLines runs events with --json and returns the raw lines and each
// decoded, failing on a line that is not one JSON object.
func jsonLines(t *testing.T, opts Options, events ...trace.Event) ([]string, []map[string]any) {
	t.Helper()
	opts.JSON, opts.Trace = true, true
	out := run(t, opts, events...)
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	objs := make([]map[string]any, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &objs[i]); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
	}
	return lines, objs
}

// summaryEvents: outer (10ms) calls inner twice (2ms and 1ms, the second
// raising) and other once (a call still running at the end).
func summaryEvents() []trace.Event {
	return []trace.Event{
		call(outer, 1000*ms),
		call(inner, 1001*ms),
		ret(inner, 1003*ms),
		call(inner, 1004*ms),
		exc(inner, 1005*ms),
		ret(outer, 1010*ms),
		call(other, 1011*ms),
	}
}

const (
	sumHeader = "% time     seconds       total  usecs/call     calls    errors function\n" +
		"------ ----------- ----------- ----------- --------- --------- ----------------\n"
	rowOuter = " 70.00    0.007000    0.010000       10000         1           outer (app.py:1)\n"
	rowInner = " 30.00    0.003000    0.003000        1500         2         1 inner (app.py:5)\n"
	rowOther = "  0.00    0.000000    0.000000           0         1           other (app.py:9)\n"
	sumTotal = "------ ----------- ----------- ----------- --------- --------- ----------------\n" +
		"100.00    0.010000                                 4         1 total\n"
)

func summary(t *testing.T, opts Options, dropped uint64, events ...trace.Event) string {
	t.Helper()
	var trace bytes.Buffer
	p := NewPrinter(&trace, opts)
	for _, e := range events {
		p.Event(e)
	}
	p.Flush()
	if trace.Len() != 0 && !opts.Trace {
		t.Errorf("-c alone printed events: %q", trace.String())
	}
	var b strings.Builder
	if err := p.WriteSummary(&b, dropped); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestConcurrentThreads(t *testing.T) {
	const threads, rounds = 8, 200
	var b bytes.Buffer
	p := NewPrinter(&b, Options{Trace: true, Indent: true, Returns: true, Summary: true})
	p.ShowTID()
	var wg sync.WaitGroup
	for i := range threads {
		th := &trace.Thread{TID: 1000 + i}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				clock := int64(r+1) * 10 * ms
				for _, e := range []trace.Event{
					call(outer, clock), call(inner, clock+ms),
					with(ret(inner, clock+2*ms), "1"), with(ret(outer, clock+3*ms), "2"),
				} {
					e.Thread = th
					p.Event(e)
				}
				p.AddDropped(1)
			}
		}()
	}
	wg.Wait()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	// Each thread has its own stack: interleaving must not change any depth.
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		_, rest, ok := strings.Cut(l, "] ")
		if !ok {
			t.Fatalf("no [tid N] prefix: %q", l)
		}
		count[rest]++
	}
	want := map[string]int{
		"outer (app.py:1)":   threads * rounds,
		"  inner (app.py:5)": threads * rounds,
		"  <- inner = 1":     threads * rounds,
		"<- outer = 2":       threads * rounds,
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("lines by text: got %v, want %v", count, want)
	}
	if n := p.Dropped(); n != threads*rounds {
		t.Errorf("Dropped() = %d, want %d", n, threads*rounds)
	}
	var s strings.Builder
	p.WriteSummary(&s, 0)
	if !strings.Contains(s.String(), fmt.Sprintf("%9d           outer (app.py:1)\n", threads*rounds)) {
		t.Errorf("summary calls:\n%s", s.String())
	}
}

// failWriter fails every write, like a closed pipe.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteError(t *testing.T) {
	p := NewPrinter(failWriter{}, Options{Trace: true, Summary: true})
	p.Event(call(outer, 1000*ms))
	if err := p.Flush(); err == nil {
		t.Fatal("Flush after a failed write returned nil")
	}
	// Later events are not printed but still counted.
	p.Event(ret(outer, 1001*ms))
	if err := p.Flush(); err == nil {
		t.Error("the write error was forgotten")
	}
	var s strings.Builder
	p.WriteSummary(&s, 0)
	if !strings.Contains(s.String(), "100.00    0.001000    0.001000        1000         1           outer") {
		t.Errorf("summary after a write error:\n%s", s.String())
	}
}

func TestNeeds(t *testing.T) {
	tests := []struct {
		opts                   Options
		wantReturns, wantTimes bool
	}{
		{Options{Trace: true}, false, false},
		{Options{Trace: true, Args: true}, false, false},
		{Options{Time: Clock}, false, true},
		{Options{Durations: true}, true, true},
		{Options{Returns: true}, true, false},
		{Options{OnlyErrors: true}, true, false},
		{Options{Indent: true}, true, false},
		{Options{Summary: true}, true, true},
		{Options{JSON: true}, true, true},
	}
	for _, tt := range tests {
		if got := tt.opts.NeedReturns(); got != tt.wantReturns {
			t.Errorf("%+v: NeedReturns() = %v", tt.opts, got)
		}
		if got := tt.opts.NeedTimes(); got != tt.wantTimes {
			t.Errorf("%+v: NeedTimes() = %v", tt.opts, got)
		}
	}
}

// appendSeconds writes what %.6f writes, for durations a trace shows (an
// exact half microsecond aside: %.6f rounds the nearest float).
func TestAppendSeconds(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 499, 501, 999, 1000, 1499, 1501, 123456789, 999999499, 999999501, 1e9, 50e6 + 4321, 3600e9 + 7} {
		want := fmt.Sprintf("%.6f", d.Seconds())
		if got := string(appendSeconds(nil, d)); got != want {
			t.Errorf("%d ns: %q, want %q", int64(d), got, want)
		}
	}
}

// A thread's name is the program's: escaped, and a "]" cannot end the
// prefix early.
func TestThreadNameInPrefix(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(&b, Options{Trace: true})
	p.ShowTID()
	e := call(outer, 0)
	e.Thread = &trace.Thread{TID: 7, Name: "evil]\x1b[2J"}
	p.Event(e)
	p.Flush()
	if got := b.String(); strings.Contains(got, "\x1b") || !strings.HasPrefix(got, "[tid 7 evil?") || strings.Count(got, "]") != 1 {
		t.Errorf("got %q", got)
	}
}

// A coroutine that suspends twice (2 ms of running, 20 ms of waiting each
// time): one call line, its resumptions and suspensions as such; -T times
// each turn at its suspension and the whole call at its return (only when
// the hook named the frame); -c counts one call and the running time.
func TestCoroutineLines(t *testing.T) {
	frame := func(e trace.Event, f uint64) trace.Event { e.Frame = f; return e }
	events := func(f uint64) []trace.Event {
		return []trace.Event{
			call(outer, 1000*ms),
			frame(at(trace.Suspend, outer, 1002*ms), f),
			frame(at(trace.Resume, outer, 1022*ms), f),
			frame(at(trace.Suspend, outer, 1024*ms), f),
			frame(at(trace.Resume, outer, 1044*ms), f),
			ret(outer, 1046*ms),
		}
	}
	const lines = "outer (app.py:1)\n<- outer suspended <0.002000>\nouter resumed (app.py:1)\n<- outer suspended <0.002000>\nouter resumed (app.py:1)\n"
	if got, want := run(t, Options{Trace: true, Durations: true}, events(1<<32|7)...), lines+"<- outer <0.046000>\n"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Without the frame, the whole call's time is unknown: none shown.
	if got, want := run(t, Options{Trace: true, Durations: true}, events(0)...), lines+"<- outer\n"; got != want {
		t.Errorf("without frames: got\n%s\nwant\n%s", got, want)
	}
	// -Z, -z: a line per call, at its end, with its arguments.
	evs := events(1<<32 | 7)
	evs[0] = with(evs[0], "n=3")
	if got, want := run(t, Options{Trace: true, Durations: true, OnlyOK: true, Args: true}, evs...), "outer(n=3) <0.046000> (app.py:1)\n"; got != want {
		t.Errorf("-z: got %q, want %q", got, want)
	}
	got := summary(t, Options{Summary: true}, 0, events(1<<32|7)...)
	row := "100.00    0.006000    0.006000        6000         1           outer (app.py:1)\n"
	if !strings.Contains(got, row) {
		t.Errorf("-c: got\n%s\nwant the row\n%s", got, row)
	}
	// JSON: the events by name.
	out := run(t, Options{Trace: true, Durations: true, JSON: true}, events(1<<32|7)...)
	for _, want := range []string{`"event":"suspend"`, `"event":"resume"`, `"event":"return"`, `"duration":0.046`} {
		if !strings.Contains(out, want) {
			t.Errorf("--json lacks %s:\n%s", want, out)
		}
	}
}
