// Package report turns decoded trace events into what the user reads: strace-
// like lines (timestamps, indentation by call depth, arguments, return
// values, durations), JSON Lines, and the -c summary table. Text from the
// target is untrusted and escaped before it reaches a terminal.
package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
	"golang.org/x/sys/unix"
)

// TimeFormat is how each line starts (-t, -tt, -ttt, -r).
type TimeFormat int

const (
	NoTime    TimeFormat = iota
	Clock                // -t: 15:04:05
	ClockUsec            // -tt: 15:04:05.000123
	Epoch                // -ttt: 1700000000.000123
	Relative             // -r: seconds since the previous line
)

// Options says what to print.
type Options struct {
	Time       TimeFormat
	Durations  bool // -T: <seconds> at each return
	Args       bool // -a: arguments at each call
	Returns    bool // --ret: = value at each return
	OnlyErrors bool // -Z: only calls that ended in an exception
	OnlyOK     bool // -z: only calls that returned normally
	Stack      bool // -k: each call's callers, from the call's value (after \x1f)
	Quiet      int  // -q: 1 no attached/detached lines (cmd's), 2 (-qq) no exit lines either
	Indent     bool // --indent: nested calls indented by depth
	JSON       bool // --json: JSON Lines
	Trace      bool // print events at all (false with -c alone)
	Summary    bool // -c/-C: the table at the end
	SortBy     string
	Color      bool
	ByThread   bool // the table's rows are per thread too (lptrace top --threads)
}

// NeedReturns tells whether the hook must send return events.
func (o Options) NeedReturns() bool {
	return o.Durations || o.Returns || o.OnlyErrors || o.OnlyOK || o.Indent || o.Summary || o.JSON
}

// atEnd tells whether a call is one line, made at its end (-Z, -z).
func (o Options) atEnd() bool { return o.OnlyErrors || o.OnlyOK }

// NeedTimes tells whether the hook must read its clock at each event.
func (o Options) NeedTimes() bool {
	return o.Time != NoTime || o.Durations || o.Summary || o.JSON
}

// Printer writes events as they come, from any number of processes and
// goroutines, and keeps the per-thread call stacks and the summary.
type Printer struct {
	opts Options
	mu   sync.Mutex
	w    *bufio.Writer
	err  error

	showPID, showTID bool
	firstThread      map[*trace.Process]*trace.Thread // until showTID: a second thread turns it on
	lastThread       *trace.Thread
	stacks           map[*trace.Thread][]frame
	active           map[activeKey]int
	labels           map[*trace.Code]string
	returnLabels     map[*trace.Code]string // "<- name", as the common return line starts
	resumeLabels     map[*trace.Code]string // "name resumed (file:line)"
	suspended        map[suspendedKey]suspended
	scratch          []byte
	clockSec         int64  // -t/-tt: the second clockText shows
	clockText        string // its "15:04:05"
	prefixes         map[threadKey]string
	stats            map[string]*stat
	last             time.Time // previous line's time (-r)
	dropped          uint64

	// -ff: each process's lines go to a printer of its own, on the file
	// open gives it.
	open   func(pid int) (io.WriteCloser, error)
	subs   map[int]*Printer
	closer []io.Closer
}

// Split writes each process's lines apart, to the file open(pid) gives
// (strace's -ff -o FILE: FILE.PID), without [pid N] prefixes. The summary
// stays this printer's (a table per process).
func (p *Printer) Split(open func(pid int) (io.WriteCloser, error)) {
	p.mu.Lock()
	p.open, p.subs = open, map[int]*Printer{}
	p.mu.Unlock()
}

// sub is process pid's printer (-ff), made at its first line; nil if its
// file could not be made (the error is the printer's).
func (p *Printer) sub(pid int) *Printer {
	if s, ok := p.subs[pid]; ok {
		return s
	}
	f, err := p.open(pid)
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		p.subs[pid] = nil
		return nil
	}
	p.closer = append(p.closer, f)
	s := NewPrinter(f, p.opts)
	p.subs[pid] = s
	return s
}

// Close flushes and closes the files of -ff.
func (p *Printer) Close() error {
	err := p.Flush()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.closer {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	p.closer = nil
	return err
}

// AddDropped counts events a target could not send, for the summary.
func (p *Printer) AddDropped(n uint64) { p.mu.Lock(); p.dropped += n; p.mu.Unlock() }

// Dropped returns the events lost in every target.
func (p *Printer) Dropped() uint64 { p.mu.Lock(); defer p.mu.Unlock(); return p.dropped }

type threadKey struct {
	th               *trace.Thread
	showPID, showTID bool
}

type frame struct {
	code  *trace.Code
	start int64 // the hook's clock, at its call or resumption
	first int64 // at its call (a resumed coroutine's: at its first start)
	whole bool  // first is known
	child int64 // time spent in traced callees
	args  string
	outer bool // the function was not already running in this thread (-c)
}

// suspendedKey is a suspended generator or coroutine: its frame (32 bits
// of its address) and function.
type suspendedKey struct {
	proc  *trace.Process
	code  *trace.Code
	frame uint64
}

// suspended is what its resumption takes back.
type suspended struct {
	first int64
	args  string
}

// activeKey counts a function's calls running in a thread (-c): a
// recursive function's total time is that of its outermost call, as
// cProfile counts it, never the sum over its nested calls.
type activeKey struct {
	thread *trace.Thread
	code   *trace.Code
}

type stat struct {
	name          string
	pid           int           // its process's: each process has its table
	code          *trace.Code   // (one of the functions the row stands for)
	thread        *trace.Thread // ByThread: its thread
	calls, errors uint64
	total, own    int64
}

// NewPrinter returns a printer writing to w.
func NewPrinter(w io.Writer, opts Options) *Printer {
	return &Printer{
		opts:         opts,
		w:            bufio.NewWriterSize(w, 64<<10),
		stacks:       map[*trace.Thread][]frame{},
		firstThread:  map[*trace.Process]*trace.Thread{},
		labels:       map[*trace.Code]string{},
		returnLabels: map[*trace.Code]string{},
		resumeLabels: map[*trace.Code]string{},
		suspended:    map[suspendedKey]suspended{},
		prefixes:     map[threadKey]string{},
		stats:        map[string]*stat{},
	}
}

// ShowPID prefixes lines with [pid N] (several processes traced).
func (p *Printer) ShowPID() { p.mu.Lock(); p.showPID = true; p.mu.Unlock() }

// ShowTID prefixes lines with [tid N] (several threads).
func (p *Printer) ShowTID() { p.mu.Lock(); p.showTID = true; p.mu.Unlock() }

// noteThread turns the [tid N] prefixes on once a process shows events of
// a second thread (a program that had one thread when the trace began).
func (p *Printer) noteThread(e trace.Event) {
	p.lastThread = e.Thread
	if first := p.firstThread[e.Proc]; first == nil {
		p.firstThread[e.Proc] = e.Thread
	} else if first != e.Thread {
		p.showTID = true
	}
}

// Exit writes strace's closing line of process pid, which ended with
// status (waitpid's form): "+++ exited with 5 +++", "+++ killed by SIGKILL
// +++", "+++ killed by SIGSEGV (core dumped) +++"; known false: "+++
// exited +++" (it was reaped before lptrace could see how). Not in JSON
// Lines, whose reader expects events only.
func (p *Printer) Exit(pid int, status int, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open != nil {
		if s := p.sub(pid); s != nil {
			s.Exit(pid, status, known)
		}
		return
	}
	if p.err != nil || p.opts.JSON || p.opts.Quiet >= 2 {
		return
	}
	if p.showPID {
		fmt.Fprintf(p.w, "[pid %d] ", pid)
	}
	fmt.Fprintf(p.w, "+++ %s +++\n", HowEnded(status, known))
	p.err = p.w.Flush()
}

// HowEnded says how a process ended (waitpid's status), as strace does:
// "exited with 5", "killed by SIGKILL", "killed by SIGSEGV (core dumped)";
// known false: "exited".
func HowEnded(status int, known bool) string {
	ws := unix.WaitStatus(status)
	switch {
	case !known:
		return "exited"
	case ws.Signaled() && ws.CoreDump():
		return fmt.Sprintf("killed by %s (core dumped)", unix.SignalName(ws.Signal()))
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", unix.SignalName(ws.Signal()))
	}
	return fmt.Sprintf("exited with %d", ws.ExitStatus())
}

// Flush writes out what is buffered; it returns the first write error (the
// reader of our output went away).
func (p *Printer) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.subs {
		if s != nil {
			if err := s.Flush(); err != nil && p.err == nil {
				p.err = err
			}
		}
	}
	if p.err == nil {
		p.err = p.w.Flush()
	}
	return p.err
}

// Event handles one event.
func (p *Printer) Event(e trace.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open != nil && e.Proc != nil {
		if s := p.sub(e.Proc.PID); s != nil {
			s.Event(e)
		}
		return
	}
	switch e.Kind {
	case trace.Counted:
		// The hook's own -c table: its calls were never sent.
		if p.opts.Summary {
			s := p.stat(e.Proc, nil, e.Code)
			s.calls += e.Counts.Calls
			s.errors += e.Counts.Errors
			s.own += e.Counts.Own
			s.total += e.Counts.Total
		}
		return
	case trace.Nested:
		if st := p.stacks[e.Thread]; len(st) > 0 {
			st[len(st)-1].child += e.Clock
		}
		return
	}
	if !p.showTID && e.Thread != p.lastThread {
		p.noteThread(e)
	}
	if !p.opts.NeedReturns() {
		// Calls only, the common and busiest case: no stacks to keep.
		if p.opts.Trace && p.err == nil && e.Kind == trace.Call {
			p.line(e, 0, -1, "", false)
			if p.w.Buffered() > 32<<10 {
				p.err = p.w.Flush()
			}
		}
		return
	}
	st := p.stacks[e.Thread]
	depth := len(st)
	var f frame
	matched := false
	switch e.Kind {
	case trace.Call, trace.Resume:
		// A resumption is no new call: -c counts its running time only.
		outer := true
		if p.opts.Summary {
			if e.Kind == trace.Call {
				p.stat(e.Proc, e.Thread, e.Code).calls++
			}
			if p.active == nil {
				p.active = map[activeKey]int{}
			}
			k := activeKey{e.Thread, e.Code}
			outer = p.active[k] == 0
			p.active[k]++
		}
		f := frame{code: e.Code, start: e.Clock, first: e.Clock, whole: true, args: e.Value, outer: outer}
		if e.Kind == trace.Resume {
			// The whole call is timed from its first start, where its
			// suspension was seen with its frame.
			k := suspendedKey{e.Proc, e.Code, e.Frame}
			s, ok := p.suspended[k]
			f.first, f.whole, f.args = s.first, ok && e.Frame != 0, s.args
			if ok {
				delete(p.suspended, k)
			}
		}
		st = append(st, f)
		p.stacks[e.Thread] = st
	default:
		// Pop to the frame of this function: frames above it whose return
		// we missed (events dropped) go too. A return with no call is of a
		// call made before we attached.
		for i := len(st) - 1; i >= 0; i-- {
			if st[i].code == e.Code {
				f, matched = st[i], true
				depth = i
				if p.opts.Summary {
					for _, g := range st[i:] {
						k := activeKey{e.Thread, g.code}
						if p.active[k]--; p.active[k] <= 0 {
							delete(p.active, k)
						}
					}
				}
				if i == 0 {
					delete(p.stacks, e.Thread) // (a thread per request: one entry each, else)
				} else {
					p.stacks[e.Thread] = st[:i]
				}
				if i > 0 && e.Clock != 0 {
					st[i-1].child += elapsed(f.start, e.Clock)
				}
				break
			}
		}
		if !matched {
			depth = 0
		}
		if matched && e.Kind == trace.Suspend && f.whole && e.Frame != 0 {
			if len(p.suspended) >= 1<<20 {
				clear(p.suspended) // generators dropped unfinished are never resumed
			}
			p.suspended[suspendedKey{e.Proc, e.Code, e.Frame}] = suspended{f.first, f.args}
		}
		if p.opts.Summary && matched {
			s := p.stat(e.Proc, e.Thread, e.Code)
			d := elapsed(f.start, e.Clock)
			if f.outer {
				s.total += d
			}
			s.own += d - f.child
			if e.Kind == trace.Exception {
				s.errors++
			}
		}
	}
	if !p.opts.Trace || p.err != nil {
		return
	}
	if e.Kind == trace.Call && p.opts.atEnd() {
		return
	}
	if (e.Kind == trace.Resume || e.Kind == trace.Suspend) && p.opts.atEnd() {
		return // -Z, -z: a line per call that ended
	}
	if e.Kind != trace.Call && !(p.opts.Durations || p.opts.Returns || p.opts.atEnd()) {
		return
	}
	if (e.Kind == trace.Return && p.opts.OnlyErrors) || (e.Kind == trace.Exception && p.opts.OnlyOK) {
		return
	}
	// -T: a suspension's time is that of its turn (since it started or
	// resumed); a return's, the whole call's, if its first start was seen.
	var dur time.Duration = -1
	switch {
	case !matched || e.Clock == 0 || e.Kind == trace.Resume:
	case e.Kind == trace.Suspend:
		dur = time.Duration(elapsed(f.start, e.Clock))
	case f.whole:
		dur = time.Duration(elapsed(f.first, e.Clock))
	}
	if p.opts.JSON {
		p.json(e, depth, dur, f.args)
	} else {
		p.line(e, depth, dur, f.args, matched)
	}
	if p.err == nil && p.w.Buffered() > 32<<10 {
		p.err = p.w.Flush()
	}
}

func (p *Printer) stat(proc *trace.Process, th *trace.Thread, c *trace.Code) *stat {
	pid := 0
	if proc != nil {
		pid = proc.PID
	}
	key := strconv.Itoa(pid) + "\x00" + c.Module + "\x00" + c.Name + "\x00" + c.File + "\x00" + strconv.Itoa(c.Line)
	if !p.opts.ByThread {
		th = nil
	} else if th != nil {
		key += "\x00" + strconv.Itoa(th.TID)
	}
	s := p.stats[key]
	if s == nil {
		s = &stat{name: p.label(c), pid: pid, code: c, thread: th}
		p.stats[key] = s
	}
	return s
}

// Row is a row of the -c table as it stands (Snapshot).
type Row struct {
	PID           int
	Thread        *trace.Thread // with ByThread; else nil
	Code          *trace.Code
	Calls, Errors uint64
	Own, Total    time.Duration
}

// Snapshot is the -c table so far, in no order.
func (p *Printer) Snapshot() []Row {
	p.mu.Lock()
	defer p.mu.Unlock()
	rows := make([]Row, 0, len(p.stats))
	for _, s := range p.stats {
		rows = append(rows, Row{s.pid, s.thread, s.code, s.calls, s.errors, time.Duration(s.own), time.Duration(s.total)})
	}
	return rows
}

// label is "qualname (file:line)", escaped, made once per function.
func (p *Printer) label(c *trace.Code) string {
	l, ok := p.labels[c]
	if !ok {
		l = p.esc(c.Name) + " (" + p.esc(c.File) + ":" + strconv.Itoa(c.Line) + ")"
		p.labels[c] = l
	}
	return l
}

func (p *Printer) esc(s string) string { return termsafe.Escape([]byte(s), false) }

const (
	colorName  = "\x1b[1m"
	colorFaint = "\x1b[2m"
	colorError = "\x1b[31m"
	colorReset = "\x1b[0m"
)

func (p *Printer) paint(color, s string) string {
	if !p.opts.Color {
		return s
	}
	return color + s + colorReset
}

func (p *Printer) prefix(e trace.Event) {
	w := p.w
	if p.showPID || p.showTID {
		// Made once per thread: a busy target sends millions of events.
		k := threadKey{e.Thread, p.showPID, p.showTID}
		s, ok := p.prefixes[k]
		if !ok {
			if len(p.prefixes) >= 4096 {
				clear(p.prefixes) // threads come and go: only the current ones matter
			}
			if p.showPID {
				s = fmt.Sprintf("[pid %d] ", e.Proc.PID)
			}
			if p.showTID {
				// With the thread's name (a "]" in it would end the prefix)
				s += fmt.Sprintf("[tid %d", e.Thread.TID)
				if name := strings.ReplaceAll(p.esc(e.Thread.Name), "]", "?"); name != "" {
					s += " " + name
				}
				s += "] "
			}
			p.prefixes[k] = s
		}
		w.WriteString(s)
	}
	if p.opts.Time != NoTime && !e.Time.IsZero() {
		// Without fmt or time.Format per line (millions a second): the
		// clock's text is made once per second.
		t := e.Time
		b := p.scratch[:0]
		switch p.opts.Time {
		case Clock, ClockUsec:
			if sec := t.Unix(); sec != p.clockSec || p.clockText == "" {
				p.clockSec, p.clockText = sec, t.Format("15:04:05")
			}
			b = append(b, p.clockText...)
			if p.opts.Time == ClockUsec {
				b = appendMicros(append(b, '.'), int64(t.Nanosecond()/1000))
			}
		case Epoch:
			b = appendMicros(append(strconv.AppendInt(b, t.Unix(), 10), '.'), int64(t.Nanosecond()/1000))
		case Relative:
			d := time.Duration(0)
			if !p.last.IsZero() {
				d = t.Sub(p.last)
			}
			p.last = t
			n := len(b)
			b = appendSeconds(b, d)
			for len(b)-n < 12 { // %12.6f
				b = append(b[:n+1], b[n:]...)
				b[n] = ' '
			}
		}
		p.scratch = append(b, ' ')
		w.Write(p.scratch)
	}
}

// appendMicros appends us (0-999999) as six digits.
func appendMicros(b []byte, us int64) []byte {
	for div := int64(1e5); div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return b
}

func (p *Printer) line(e trace.Event, depth int, dur time.Duration, callValue string, matched bool) {
	w := p.w
	p.prefix(e)
	if p.opts.Indent {
		w.WriteString(strings.Repeat("  ", min(depth, 200)))
	}
	switch {
	case e.Kind == trace.Call && !p.opts.Args && !p.opts.Color && !p.opts.Stack:
		w.WriteString(p.label(e.Code)) // the common case: made once per function
	case e.Kind == trace.Resume:
		l, ok := p.resumeLabels[e.Code]
		if !ok {
			l = p.paint(colorName, p.esc(e.Code.Name)) + " resumed " + p.where(e.Code)
			p.resumeLabels[e.Code] = l
		}
		w.WriteString(l)
	case e.Kind == trace.Call:
		w.WriteString(p.paint(colorName, p.esc(e.Code.Name)))
		if p.opts.Args {
			w.WriteString("(" + p.args(e.Value) + ")")
		}
		w.WriteString(" " + p.where(e.Code))
	case p.opts.atEnd():
		// -Z, -z: one line per failed (returned) call, made at its end.
		args := ""
		if matched {
			args = p.args(callValue)
		}
		w.WriteString(p.paint(colorName, p.esc(e.Code.Name)) + "(" + args + ")")
		p.result(e)
		if dur >= 0 && p.opts.Durations {
			fmt.Fprintf(w, " <%.6f>", dur.Seconds())
		}
		w.WriteString(" " + p.where(e.Code) + "\n")
		if matched {
			p.callers(callValue)
		}
		return
	default:
		l, ok := p.returnLabels[e.Code]
		if !ok {
			// Made once per function, as the calls' labels.
			l = "<- " + p.paint(colorName, p.esc(e.Code.Name))
			p.returnLabels[e.Code] = l
		}
		w.WriteString(l)
		if e.Kind == trace.Suspend {
			w.WriteString(" suspended")
		} else {
			p.result(e)
		}
	}
	if e.Kind != trace.Call && p.opts.Durations && dur >= 0 {
		p.scratch = append(appendSeconds(append(p.scratch[:0], " <"...), dur), '>')
		w.Write(p.scratch)
	}
	w.WriteByte('\n')
	if e.Kind == trace.Call && p.opts.Stack {
		p.callers(e.Value)
	}
}

// callers writes -k's lines of a call's callers, innermost first, as
// strace -k writes a system call's: " > function (file:line)".
func (p *Printer) callers(v string) {
	for _, c := range callStack(v) {
		if c.QualName == "..." {
			p.w.WriteString(" > ...\n")
			continue
		}
		p.w.WriteString(" > " + p.esc(c.QualName) + " (" + p.esc(c.File) + ":" + strconv.Itoa(c.Line) + ")\n")
	}
}

// caller is a frame of -k's stack.
type caller struct {
	QualName string `json:"qualname"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
}

// callArgs is the arguments' part of a call's value (before -k's stack).
func callArgs(v string) string {
	args, _, _ := strings.Cut(v, "\x1f")
	return args
}

// callStack reads -k's part of a call's value: "\x1fqualname\tfile\tline"
// per caller ("\x1f..." when cut).
func callStack(v string) []caller {
	_, stack, ok := strings.Cut(v, "\x1f")
	if !ok {
		return nil
	}
	var out []caller
	for _, f := range strings.Split(stack, "\x1f") {
		parts := strings.SplitN(f, "\t", 3)
		c := caller{QualName: parts[0]}
		if len(parts) == 3 {
			c.File = parts[1]
			c.Line, _ = strconv.Atoi(parts[2])
		}
		out = append(out, c)
	}
	return out
}

// appendSeconds appends d as seconds with six decimals, as %.6f writes
// it (rounded to the microsecond, a half up), without fmt: a line of -T
// each.
func appendSeconds(b []byte, d time.Duration) []byte {
	us := (int64(d) + 500) / 1000
	b = strconv.AppendInt(b, us/1e6, 10)
	return appendMicros(append(b, '.'), us%1e6)
}

// where is "(file:line)".
func (p *Printer) where(c *trace.Code) string {
	return p.paint(colorFaint, "("+p.esc(c.File)+":"+strconv.Itoa(c.Line)+")")
}

// result writes " = value" or " = ! Exception(...)".
func (p *Printer) result(e trace.Event) {
	switch {
	case e.Kind == trace.Exception:
		v := "exception"
		if e.HasValue {
			v = p.esc(e.Value)
		}
		p.w.WriteString(" = " + p.paint(colorError, "! "+v))
	case (p.opts.Returns || p.opts.OnlyOK) && e.HasValue:
		p.w.WriteString(" = " + p.esc(e.Value))
	}
}

// args turns the hook's "a=1\tb='x'" into "a=1, b='x'".
func (p *Printer) args(v string) string {
	v = callArgs(v)
	if v == "" {
		return ""
	}
	return p.esc(strings.ReplaceAll(v, "\t", ", "))
}

// jsonEvent is one line of --json.
type jsonEvent struct {
	PID      int             `json:"pid"`
	TID      int             `json:"tid"`
	Thread   string          `json:"thread"`
	Time     float64         `json:"ts,omitempty"`
	Event    string          `json:"event"`
	Function string          `json:"function"`
	QualName string          `json:"qualname"`
	Module   string          `json:"module"`
	File     string          `json:"file"`
	Line     int             `json:"line"`
	Depth    int             `json:"depth"`
	Duration *float64        `json:"duration,omitempty"`
	Args     json.RawMessage `json:"args,omitempty"`
	Stack    []caller        `json:"stack,omitempty"` // -k: the callers, innermost first
	Return   *string         `json:"return,omitempty"`
	Error    *string         `json:"exception,omitempty"`
}

func (p *Printer) json(e trace.Event, depth int, dur time.Duration, args string) {
	j := jsonEvent{
		PID: e.Proc.PID, TID: e.Thread.TID, Thread: e.Thread.Name, Event: e.Kind.String(),
		Function: shortName(e.Code.Name), QualName: e.Code.Name, Module: e.Code.Module,
		File: e.Code.File, Line: e.Code.Line, Depth: depth,
	}
	if !e.Time.IsZero() {
		j.Time = float64(e.Time.UnixMicro()) / 1e6
	}
	if dur >= 0 && e.Kind != trace.Call && p.opts.Durations {
		s := dur.Seconds()
		j.Duration = &s
	}
	if p.opts.atEnd() && e.Kind != trace.Call {
		// -Z, -z: one line per call, with its arguments and callers
		if p.opts.Args {
			j.Args = jsonArgs(callArgs(args))
		}
		j.Stack = callStack(args)
	}
	if e.HasValue {
		v := e.Value
		switch {
		case e.Kind == trace.Call:
			if p.opts.Args {
				j.Args = jsonArgs(callArgs(v))
			}
			j.Stack = callStack(v)
		case e.Kind == trace.Exception:
			j.Error = &v
		default:
			j.Return = &v
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // writes the newline
	enc.SetEscapeHTML(false)
	if enc.Encode(j) == nil {
		p.w.Write(JSONSafe(b.Bytes()))
	}
}

// jsonArgs keeps the arguments' order: {"a": "1", "b": "'x'"}.
func jsonArgs(v string) json.RawMessage {
	var b strings.Builder
	b.WriteByte('{')
	if v != "" {
		for i, kv := range strings.Split(v, "\t") {
			name, val, _ := strings.Cut(kv, "=")
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(jsonString(name))
			b.WriteByte(':')
			b.Write(jsonString(val))
		}
	}
	b.WriteByte('}')
	return json.RawMessage(b.String())
}

// jsonString quotes s without HTML escaping (reprs are full of <...>).
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// JSONSafe escapes what encoding/json leaves raw but a terminal would
// obey, the runes termsafe.Unsafe names (the target's text is untrusted,
// and JSON Lines often end up on a terminal). encoding/json has escaped
// the C0 controls inside strings: those left are the JSON's own
// whitespace.
func JSONSafe(b []byte) []byte {
	if !bytes.ContainsFunc(b, jsonUnsafe) {
		return b
	}
	var out bytes.Buffer
	for _, r := range string(b) {
		if jsonUnsafe(r) {
			fmt.Fprintf(&out, "\\u%04x", r)
		} else {
			out.WriteRune(r)
		}
	}
	return out.Bytes()
}

func jsonUnsafe(r rune) bool { return r >= 0x20 && termsafe.Unsafe(r) }

func shortName(q string) string {
	if i := strings.LastIndexByte(q, '.'); i >= 0 {
		return q[i+1:]
	}
	return q
}

// elapsed is the time from one clock reading of the hook to another, never
// less than 0: the machine code's clock (the time-stamp counter,
// recalibrated against the hook's clock while it runs) may read a few
// nanoseconds behind a reading of the Python callback's.
func elapsed(from, to int64) int64 {
	return max(to-from, 0)
}
