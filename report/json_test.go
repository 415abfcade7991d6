package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
)

func TestJSON(t *testing.T) {
	meth := &trace.Code{Name: "Cls.<locals>.meth", File: "pkg/mod.py", Line: 7, Module: "pkg.mod"}
	t0 := time.Unix(1700000000, 0).UTC()
	events := []trace.Event{
		with(call(outer, 1000*ms), "a=1\tb='x'"),
		call(meth, 1001*ms),
		with(ret(meth, 1003*ms), "<Foo object>"),
		with(exc(outer, 1010*ms), "ValueError('<bad>')"),
	}
	for i := range events {
		events[i].Time = t0.Add(time.Duration(events[i].Clock - 1000*ms))
	}
	lines, objs := jsonLines(t, Options{Returns: true, Durations: true, Args: true}, events...)
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	// JSON numbers decode as float64.
	want := []map[string]any{
		{"pid": 100.0, "tid": 101.0, "thread": "MainThread", "ts": 1700000000.0, "event": "call",
			"function": "outer", "qualname": "outer", "module": "app", "file": "app.py", "line": 1.0, "depth": 0.0,
			"args": map[string]any{"a": "1", "b": "'x'"}},
		{"pid": 100.0, "tid": 101.0, "thread": "MainThread", "ts": 1700000000.001, "event": "call",
			"function": "meth", "qualname": "Cls.<locals>.meth", "module": "pkg.mod", "file": "pkg/mod.py", "line": 7.0, "depth": 1.0},
		{"pid": 100.0, "tid": 101.0, "thread": "MainThread", "ts": 1700000000.003, "event": "return",
			"function": "meth", "qualname": "Cls.<locals>.meth", "module": "pkg.mod", "file": "pkg/mod.py", "line": 7.0, "depth": 1.0,
			"duration": 0.002, "return": "<Foo object>"},
		{"pid": 100.0, "tid": 101.0, "thread": "MainThread", "ts": 1700000000.01, "event": "exception",
			"function": "outer", "qualname": "outer", "module": "app", "file": "app.py", "line": 1.0, "depth": 0.0,
			"duration": 0.01, "exception": "ValueError('<bad>')"},
	}
	for i := range want {
		if got, w := fmt.Sprint(objs[i]), fmt.Sprint(want[i]); got != w {
			t.Errorf("line %d:\ngot  %s\nwant %s", i+1, got, w)
		}
	}
	// A map loses the order: the raw text shows it is kept.
	if !strings.Contains(lines[0], `"args":{"a":"1","b":"'x'"}`) {
		t.Errorf("args not in order: %s", lines[0])
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, `\u003c`) {
			t.Errorf("< escaped for HTML: %s", l)
		}
	}
}

func TestJSONReturnsNeedAnOption(t *testing.T) {
	// --json alone prints calls only, as the text mode does.
	lines, objs := jsonLines(t, Options{}, nested()...)
	if len(lines) != 2 || objs[0]["event"] != "call" || objs[1]["event"] != "call" {
		t.Errorf("got %q", lines)
	}
	// An exception without its text has no "exception" field, and durations
	// only come with -T.
	_, objs = jsonLines(t, Options{Returns: true}, call(outer, 1000*ms), exc(outer, 1001*ms))
	if _, ok := objs[1]["exception"]; ok || objs[1]["event"] != "exception" {
		t.Errorf("got %v", objs[1])
	}
	if _, ok := objs[1]["duration"]; ok {
		t.Errorf("duration without -T: %v", objs[1])
	}
}

// Reprs are full of <...>: JSON must not escape them for HTML.
func TestJSONArgsKeepLessThan(t *testing.T) {
	lines, _ := jsonLines(t, Options{Args: true}, with(call(outer, 0), "o=<Foo object>"))
	if !strings.Contains(lines[0], `"args":{"o":"<Foo object>"}`) {
		t.Errorf("got %s", lines[0])
	}
}

func TestJSONNoArgs(t *testing.T) {
	// With -a the hook sends "" (a value) for a function without parameters.
	lines, objs := jsonLines(t, Options{Args: true}, with(call(outer, 0), ""))
	if args, ok := objs[0]["args"]; ok && fmt.Sprint(args) != "map[]" {
		t.Errorf("args of a function without parameters: %s", lines[0])
	}
}

// C1 controls and bidi overrides from the target are escaped in JSON too.
func TestJSONEscapesTerminalControls(t *testing.T) {
	lines, _ := jsonLines(t, Options{Args: true}, with(call(outer, 0), "o='\u009b31m\u202e'"))
	if strings.ContainsRune(lines[0], 0x9b) || strings.ContainsRune(lines[0], 0x202e) || !strings.Contains(lines[0], `\u009b31m\u202e`) {
		t.Errorf("got %q", lines[0])
	}
}

// The JSON writer and the terminal's escaping (termsafe) agree on what a
// terminal would obey: each rune comes out raw from both or from neither.
// By name: the bidirectional marks U+200E and U+200F, the override U+202E,
// the isolate U+2066, C0 controls, DEL and C1 controls, which JSON also
// gives back as they were; then every rune of the BMP. (encoding/json also
// escapes '"', '\\', U+2028 and U+2029, which a terminal shows as they are.)
func TestJSONEscapesLikeTermsafe(t *testing.T) {
	inJSON := func(r rune) []byte { return JSONSafe(jsonString(string(r))) }
	jsonRaw := func(r rune) bool { return bytes.Contains(inJSON(r), []byte(string(r))) }
	termRaw := func(r rune) bool { return termsafe.Escape([]byte(string(r)), false) == string(r) }
	for _, r := range []rune{0x200e, 0x200f, 0x202e, 0x2066, 0x00, 0x07, '\t', '\n', 0x1b, 0x7f, 0x80, 0x9b, 0x9f} {
		if jsonRaw(r) || termRaw(r) {
			t.Errorf("U+%04X left raw: in JSON %v (%q), on the terminal %v", r, jsonRaw(r), inJSON(r), termRaw(r))
		}
		var back string
		if err := json.Unmarshal(inJSON(r), &back); err != nil || back != string(r) {
			t.Errorf("U+%04X: JSON %q reads back as %q (%v)", r, inJSON(r), back, err)
		}
	}
	for r := rune(0); r <= 0xffff; r++ {
		if r >= 0xd800 && r <= 0xdfff || r == '"' || r == '\\' || r == 0x2028 || r == 0x2029 {
			continue
		}
		if j, tm := jsonRaw(r), termRaw(r); j != tm {
			t.Errorf("U+%04X: raw in JSON %v (%q), on the terminal %v", r, j, inJSON(r), tm)
		}
	}
}
