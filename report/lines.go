package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
)

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
