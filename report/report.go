// Package report turns decoded trace events into what the user reads: strace-
// like lines (timestamps, indentation by call depth, arguments, return
// values, durations), JSON Lines, and the -c summary table. Text from the
// target is untrusted and escaped before it reaches a terminal.
package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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

const (
	colorName  = "\x1b[1m"
	colorFaint = "\x1b[2m"
	colorError = "\x1b[31m"
	colorReset = "\x1b[0m"
)

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
