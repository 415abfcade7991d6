package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lptrace/lptrace/trace"
)

// Sort keys of the -c table (-S).
var SortKeys = []string{"time", "total", "calls", "errors", "name"}

// WriteSummary writes the -c table, like strace -c: per function the
// calls, own time (without the traced functions it called), total time,
// time per call and exceptions. Calls still running at the end count as
// calls, without time. dropped > 0 says the counts are incomplete.
func (p *Printer) WriteSummary(w io.Writer, dropped uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A table per process (-c -p A -p B, -f), in the order of their PIDs.
	byPID := map[int][]*stat{}
	var pids []int
	all := make([]*stat, 0, len(p.stats))
	for _, s := range p.stats {
		all = append(all, s)
	}
	for _, sub := range p.subs { // (-ff: each process's printer counted its own)
		if sub != nil {
			sub.mu.Lock()
			for _, s := range sub.stats {
				all = append(all, s)
			}
			sub.mu.Unlock()
		}
	}
	for _, s := range all {
		if byPID[s.pid] == nil {
			pids = append(pids, s.pid)
		}
		byPID[s.pid] = append(byPID[s.pid], s)
	}
	sort.Ints(pids)
	if len(pids) == 0 {
		pids = []int{0}
	}
	var b strings.Builder
	for i, pid := range pids {
		last := i == len(pids)-1
		if len(pids) > 1 && !p.opts.JSON {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "process %d:\n", pid)
		}
		if err := p.summaryTable(&b, byPID[pid], pid, map[bool]uint64{true: dropped}[last]); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// summaryTable writes one process's table (dropped: the drops to say).
func (p *Printer) summaryTable(b *strings.Builder, rows []*stat, pid int, dropped uint64) error {
	var own int64
	var calls, errors uint64
	for _, s := range rows {
		own += s.own
		calls += s.calls
		errors += s.errors
	}
	less := map[string]func(a, b *stat) bool{
		"time":   func(a, b *stat) bool { return a.own > b.own },
		"total":  func(a, b *stat) bool { return a.total > b.total },
		"calls":  func(a, b *stat) bool { return a.calls > b.calls },
		"errors": func(a, b *stat) bool { return a.errors > b.errors },
		"name":   func(a, b *stat) bool { return a.name < b.name },
	}[p.opts.SortBy]
	if less == nil {
		less = func(a, b *stat) bool { return a.own > b.own }
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if less(rows[i], rows[j]) != less(rows[j], rows[i]) {
			return less(rows[i], rows[j])
		}
		return rows[i].name < rows[j].name
	})
	if p.opts.JSON {
		return writeSummaryJSON(b, rows, pid, own, dropped)
	}
	fmt.Fprintf(b, "%6s %11s %11s %11s %9s %9s %s\n", "% time", "seconds", "total", "usecs/call", "calls", "errors", "function")
	dash := "------ ----------- ----------- ----------- --------- --------- ----------------\n"
	b.WriteString(dash)
	for _, s := range rows {
		pct := 0.0
		if own > 0 {
			pct = 100 * float64(s.own) / float64(own)
		}
		per := int64(0)
		if s.calls > 0 {
			per = s.total / int64(s.calls) / 1000
		}
		fmt.Fprintf(b, "%6.2f %11.6f %11.6f %11d %9d %9s %s\n", pct, secs(s.own), secs(s.total), per, s.calls, count(s.errors), s.name)
	}
	b.WriteString(dash)
	fmt.Fprintf(b, "%6.2f %11.6f %11s %11s %9d %9s total\n", 100.0, secs(own), "", "", calls, count(errors))
	if dropped > 0 {
		fmt.Fprintf(b, "lptrace: %s: the counts above are incomplete\n", Dropped(dropped))
	}
	return nil
}

func secs(ns int64) float64 { return time.Duration(ns).Seconds() }

func count(n uint64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// Dropped says what dropped events mean, for the end of a session and the
// summary alike.
func Dropped(n uint64) string {
	return fmt.Sprintf("%d events were dropped (lptrace fell behind: its buffer in the process was full)", n)
}

// summaryRow is a line of --json -c: a function's counts (seconds), or
// (Function "") the total.
type summaryRow struct {
	Event    string  `json:"event"` // "count", "total"
	PID      int     `json:"pid,omitempty"`
	Function string  `json:"function,omitempty"`
	QualName string  `json:"qualname,omitempty"`
	Module   string  `json:"module,omitempty"`
	File     string  `json:"file,omitempty"`
	Line     int     `json:"line,omitempty"`
	Calls    uint64  `json:"calls"`
	Errors   uint64  `json:"errors"`
	Own      float64 `json:"seconds"`
	Total    float64 `json:"total,omitempty"`
	Percent  float64 `json:"percent"`
	Dropped  uint64  `json:"dropped,omitempty"` // events lost: the counts are incomplete
}

// writeSummaryJSON writes the -c table as JSON Lines, in the table's order,
// then its total.
func writeSummaryJSON(w io.Writer, rows []*stat, pid int, own int64, dropped uint64) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	total := summaryRow{Event: "total", PID: pid, Own: secs(own), Percent: 100, Dropped: dropped}
	for _, s := range rows {
		r := summaryRow{Event: "count", PID: pid, Calls: s.calls, Errors: s.errors, Own: secs(s.own), Total: secs(s.total)}
		if c := s.code; c != nil {
			r.Function, r.QualName, r.Module, r.File, r.Line = shortName(c.Name), c.Name, c.Module, c.File, c.Line
		}
		if own > 0 {
			r.Percent = 100 * float64(s.own) / float64(own)
		}
		total.Calls += s.calls
		total.Errors += s.errors
		enc.Encode(r)
	}
	enc.Encode(total)
	_, err := w.Write(b.Bytes())
	return err
}

type stat struct {
	name          string
	pid           int           // its process's: each process has its table
	code          *trace.Code   // (one of the functions the row stands for)
	thread        *trace.Thread // ByThread: its thread
	calls, errors uint64
	total, own    int64
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
