package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
)

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
