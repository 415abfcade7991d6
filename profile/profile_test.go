package profile

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/lptrace/lptrace/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

const ms = int64(1e6)

var (
	proc    = &trace.Process{PID: 42}
	mainT   = &trace.Thread{TID: 42, Name: "MainThread"}
	worker  = &trace.Thread{TID: 43, Name: "worker-1"}
	mainC   = &trace.Code{Name: "main", File: "app.py", Line: 1}
	work    = &trace.Code{Name: "Job.work", File: "app.py", Line: 5}
	fib     = &trace.Code{Name: "fib", File: "app.py", Line: 9}
	fetch   = &trace.Code{Name: "fetch", File: "app.py", Line: 20}
	waiting = &trace.Code{Name: "wait", File: "app.py", Line: 30}
	evil    = &trace.Code{Name: "bad\x1b[31m<b>&\"", File: "x\n.py", Line: 1}
)

func ev(k trace.Kind, t *trace.Thread, c *trace.Code, at int64) trace.Event {
	return trace.Event{Proc: proc, Thread: t, Code: c, Kind: k, Clock: 1000*ms + at}
}

// session: main calls Job.work (300 ms), fib twice nested, a coroutine
// that waits 100 ms between two turns of 1 ms, then raises; a worker
// thread waits from 0 to the end (400 ms) without returning.
func session() []trace.Event {
	return []trace.Event{
		ev(trace.Call, mainT, mainC, 0),
		ev(trace.Call, worker, waiting, 0),
		ev(trace.Call, mainT, work, 1*ms),
		ev(trace.Return, mainT, work, 301*ms),
		ev(trace.Call, mainT, fib, 302*ms),
		ev(trace.Call, mainT, fib, 303*ms),
		ev(trace.Return, mainT, fib, 304*ms),
		ev(trace.Return, mainT, fib, 305*ms),
		ev(trace.Call, mainT, fetch, 290*ms), // (a clock that went back: kept in order)
		ev(trace.Suspend, mainT, fetch, 306*ms),
		ev(trace.Return, mainT, evil, 307*ms), // a return with no call: ignored
		ev(trace.Resume, mainT, fetch, 390*ms),
		ev(trace.Return, mainT, fetch, 391*ms),
		ev(trace.Exception, mainT, mainC, 400*ms),
	}
}

func record(t *testing.T, format string, opts Options, events []trace.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := New(format, &b, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		w.Event(e)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestChromeTrace(t *testing.T) {
	var doc struct {
		TraceEvents []struct {
			Ph   string          `json:"ph"`
			Name string          `json:"name"`
			PID  int             `json:"pid"`
			TID  int             `json:"tid"`
			TS   float64         `json:"ts"`
			Args json.RawMessage `json:"args"`
		} `json:"traceEvents"`
	}
	out := record(t, "chrometrace", Options{Title: "test"}, session())
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	type open struct {
		name string
		ts   float64
	}
	stacks := map[int][]open{}
	spans := map[string][]float64{} // name: durations (us)
	names := map[int]string{}
	for _, e := range doc.TraceEvents {
		switch e.Ph {
		case "B":
			stacks[e.TID] = append(stacks[e.TID], open{e.Name, e.TS})
		case "E":
			st := stacks[e.TID]
			if len(st) == 0 {
				t.Fatalf("E without B on %d", e.TID)
			}
			o := st[len(st)-1]
			stacks[e.TID] = st[:len(st)-1]
			if e.TS < o.ts {
				t.Errorf("%s ends before it starts", o.name)
			}
			spans[o.name] = append(spans[o.name], e.TS-o.ts)
		case "M":
			var a struct{ Name string }
			json.Unmarshal(e.Args, &a)
			names[e.TID] = a.Name
		}
	}
	for tid, st := range stacks {
		if len(st) > 0 {
			t.Errorf("thread %d: %d slices never closed", tid, len(st))
		}
	}
	near := func(got []float64, want ...float64) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1 {
				return false
			}
		}
		return true
	}
	if !near(spans["Job.work"], 300000) || !near(spans["fib"], 1000, 3000) || !near(spans["main"], 400000) {
		t.Errorf("slices: %v", spans)
	}
	// The coroutine: a slice per turn (the clock that went back reads as
	// the thread's latest time); the worker's call runs to the end.
	if !near(spans["fetch"], 1000, 1000) || !near(spans["wait"], 400000) {
		t.Errorf("fetch %v, wait %v", spans["fetch"], spans["wait"])
	}
	if names[42] != "MainThread" || names[43] != "worker-1" {
		t.Errorf("thread names %v", names)
	}
}

func TestSpeedscope(t *testing.T) {
	var doc struct {
		Schema string `json:"$schema"`
		Shared struct {
			Frames []struct {
				Name string `json:"name"`
				File string `json:"file"`
				Line int    `json:"line"`
			} `json:"frames"`
		} `json:"shared"`
		Profiles []struct {
			Type       string `json:"type"`
			Name       string `json:"name"`
			Unit       string `json:"unit"`
			StartValue int64  `json:"startValue"`
			EndValue   int64  `json:"endValue"`
			Events     []struct {
				Type  string `json:"type"`
				Frame int    `json:"frame"`
				At    int64  `json:"at"`
			} `json:"events"`
		} `json:"profiles"`
	}
	out := record(t, "speedscope", Options{}, session())
	if err := json.Unmarshal(out, &doc); err != nil || !strings.Contains(doc.Schema, "speedscope") {
		t.Fatalf("not speedscope's JSON (%v):\n%s", err, out)
	}
	if len(doc.Profiles) != 2 || doc.Profiles[0].Name != "pid 42 tid 42 MainThread" {
		t.Fatalf("profiles: %+v", doc.Profiles)
	}
	total := map[string]int64{}
	for _, p := range doc.Profiles {
		if p.Type != "evented" || p.Unit != "nanoseconds" || p.EndValue < p.StartValue {
			t.Errorf("profile %+v", p)
		}
		var st []int
		var at int64
		starts := map[int][]int64{}
		for _, e := range p.Events {
			if e.At < at || e.At < p.StartValue || e.At > p.EndValue {
				t.Errorf("%s: event at %d out of order or range", p.Name, e.At)
			}
			at = e.At
			if e.Type == "O" {
				st = append(st, e.Frame)
				starts[e.Frame] = append(starts[e.Frame], e.At)
				continue
			}
			if len(st) == 0 || st[len(st)-1] != e.Frame {
				t.Fatalf("%s: close of frame %d does not match %v", p.Name, e.Frame, st)
			}
			st = st[:len(st)-1]
			s := starts[e.Frame]
			total[doc.Shared.Frames[e.Frame].Name] += e.At - s[len(s)-1]
			starts[e.Frame] = s[:len(s)-1]
		}
		if len(st) != 0 {
			t.Errorf("%s: %d frames left open", p.Name, len(st))
		}
	}
	if total["Job.work"] != 300*ms || total["fetch"] != 2*ms || total["wait"] != 400*ms || total["fib"] != 4*ms {
		t.Errorf("times: %v", total)
	}
}

// svgBox is a frame of the flame graph, read back from the SVG.
type svgBox struct {
	label, title string
	x, w         float64
	depth        int
}

func readSVG(t *testing.T, data []byte) []svgBox {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	if !bytes.HasPrefix(data, []byte("<?xml")) { // (HTML: strict XML inside the SVG only)
		d.Strict = false
		d.AutoClose = xml.HTMLAutoClose
		d.Entity = xml.HTMLEntity
	}
	var boxes []svgBox
	var cur *svgBox
	inTitle := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			attr := func(n string) string {
				for _, a := range e.Attr {
					if a.Name.Local == n {
						return a.Value
					}
				}
				return ""
			}
			if e.Name.Local == "g" && attr("class") == "f" {
				b := svgBox{label: attr("data-label")}
				json.Unmarshal([]byte(attr("data-x")), &b.x)
				json.Unmarshal([]byte(attr("data-w")), &b.w)
				json.Unmarshal([]byte(attr("data-d")), &b.depth)
				boxes = append(boxes, b)
				cur = &boxes[len(boxes)-1]
			}
			inTitle = e.Name.Local == "title" && cur != nil
		case xml.CharData:
			if inTitle {
				cur.title += string(e)
			}
		case xml.EndElement:
			inTitle = false
		}
	}
	return boxes
}

func TestFlameGraph(t *testing.T) {
	for _, html := range []bool{false, true} {
		out := record(t, "flamegraph", Options{Title: "test", HTML: html}, session())
		if html != bytes.HasPrefix(out, []byte("<!DOCTYPE html>")) {
			t.Errorf("HTML %v: starts %.40q", html, out)
		}
		if bytes.Contains(out, []byte("http://")) && !bytes.Contains(out, []byte(`xmlns="http://www.w3.org/2000/svg"`)) {
			t.Errorf("fetches something")
		}
		boxes := readSVG(t, out)
		byLabel := map[string]svgBox{}
		for _, b := range boxes {
			byLabel[b.label] = b
		}
		root, work, main, wait := byLabel["all"], byLabel["Job.work (app.py:5)"], byLabel["main (app.py:1)"], byLabel["wait (app.py:30)"]
		// all = main's 400 ms + wait's 400 ms: 1200 px.
		if root.w < 1199 || math.Abs(main.w-600) > 0.5 || math.Abs(work.w-450) > 0.5 || math.Abs(wait.w-600) > 0.5 {
			t.Errorf("widths: all %v main %v work %v wait %v", root.w, main.w, work.w, wait.w)
		}
		if work.depth != main.depth+1 || work.x < main.x || work.x+work.w > main.x+main.w+1e-3 {
			t.Errorf("Job.work is not inside main: %+v %+v", work, main)
		}
		if !strings.Contains(work.title, "0.300000 s") || !strings.Contains(work.title, "1 calls") {
			t.Errorf("Job.work's tooltip: %q", work.title)
		}
		// fib: the outer call's box, its recursive call above it.
		if f := byLabel["fib (app.py:9)"]; !strings.Contains(f.title, "0.001000 s") || !strings.Contains(f.title, "1 calls") {
			t.Errorf("fib's tooltip: %q", f.title)
		}
		if f := byLabel["fetch (app.py:20)"]; !strings.Contains(f.title, "0.002000 s") || !strings.Contains(f.title, "1 calls") {
			t.Errorf("fetch's tooltip (two turns of 1 ms, one call): %q", f.title)
		}
	}
	// --threads: a tower per thread.
	boxes := readSVG(t, record(t, "flamegraph", Options{Threads: true}, session()))
	depth := map[string]int{}
	for _, b := range boxes {
		depth[b.label] = b.depth
	}
	if depth["pid 42 tid 43 worker-1"] != 1 || depth["wait (app.py:30)"] != 2 || depth["main (app.py:1)"] != 2 {
		t.Errorf("depths with threads: %v", depth)
	}
}

// The program's names reach no output raw: no escape sequence, and the
// SVG stays well-formed.
func TestUntrustedNames(t *testing.T) {
	events := []trace.Event{ev(trace.Call, mainT, evil, 0), ev(trace.Return, mainT, evil, ms)}
	for _, f := range Formats {
		out := record(t, f, Options{}, events)
		if bytes.ContainsAny(out, "\x1b") {
			t.Errorf("%s: a raw escape character", f)
		}
		switch {
		case f == "flamegraph":
			if b := readSVG(t, out); len(b) != 2 {
				t.Errorf("flamegraph: %d boxes", len(b))
			}
		case f == "perfetto":
			if p := readPerfetto(t, out); p.names[1] == "" {
				t.Errorf("perfetto: %+v", p)
			}
		case !json.Valid(out):
			t.Errorf("%s: not JSON", f)
		}
	}
}

func TestFormatFor(t *testing.T) {
	for name, want := range map[string]string{"a.svg": "flamegraph", "a.HTML": "flamegraph", "t.json": "chrometrace",
		"p.speedscope.json": "speedscope", "a.txt": ""} {
		if got := FormatFor(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// Nothing recorded: every format still writes a file its reader opens.
func TestEmpty(t *testing.T) {
	for _, f := range Formats {
		out := record(t, f, Options{}, nil)
		switch f {
		case "flamegraph":
			readSVG(t, out)
		case "perfetto":
			readPerfetto(t, out)
		default:
			if !json.Valid(out) {
				t.Errorf("%s: %s", f, out)
			}
		}
	}
}

// Waiting in the standard library's blocking calls is left out of the
// flame graph, unless Idle: a worker that waits 90 ms for work and works
// 10 ms shows 10 ms.
func TestFlameGraphIdle(t *testing.T) {
	get := &trace.Code{Name: "Queue.get", File: "/usr/lib/python3.12/queue.py", Line: 154}
	wait := &trace.Code{Name: "Condition.wait", File: "/usr/lib/python3.12/threading.py", Line: 323}
	events := []trace.Event{
		ev(trace.Call, worker, waiting, 0),
		ev(trace.Call, worker, get, 0),
		ev(trace.Call, worker, wait, 1*ms),
		ev(trace.Return, worker, wait, 91*ms),
		ev(trace.Return, worker, get, 92*ms),
		ev(trace.Call, worker, work, 92*ms),
		ev(trace.Return, worker, work, 100*ms),
		ev(trace.Return, worker, waiting, 100*ms),
	}
	for _, idle := range []bool{false, true} {
		boxes := readSVG(t, record(t, "flamegraph", Options{Idle: idle}, events))
		titles := map[string]string{}
		for _, b := range boxes {
			titles[strings.SplitN(b.label, " ", 2)[0]] = b.title
		}
		want := map[string]string{"all": "0.010000 s", "wait": "0.010000 s", "Queue.get": "0.002000 s", "Job.work": "0.008000 s"}
		if idle {
			want = map[string]string{"all": "0.100000 s", "wait": "0.100000 s", "Queue.get": "0.092000 s", "Condition.wait": "0.090000 s"}
		}
		for name, w := range want {
			if !strings.Contains(titles[name], ": "+w) {
				t.Errorf("idle %v: %s: %q, want %s", idle, name, titles[name], w)
			}
		}
		if _, shown := titles["Condition.wait"]; shown != idle {
			t.Errorf("idle %v: Condition.wait shown: %v", idle, shown)
		}
	}
}

// perfettoTrace is a Perfetto trace read back: its tracks (uuid: thread
// name, tid), the interned names, and the slices per track.
type perfettoTrace struct {
	threads map[uint64]string
	tids    map[uint64]uint64
	names   map[uint64]string
	files   map[uint64]string
	slices  map[uint64][]perfettoSlice
}

type perfettoSlice struct {
	name       string
	start, end uint64
}

// fields splits a message into its fields (number: values, bytes or
// varints), failing the test on malformed data.
func fields(t *testing.T, b []byte) map[protowire.Number][]any {
	t.Helper()
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatal("bad varint")
			}
			out[num] = append(out[num], v)
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatal("bad bytes")
			}
			out[num] = append(out[num], v)
			b = b[n:]
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
	}
	return out
}

func one[T any](m map[protowire.Number][]any, n protowire.Number) (T, bool) {
	var zero T
	if len(m[n]) == 0 {
		return zero, false
	}
	v, ok := m[n][0].(T)
	return v, ok
}

func readPerfetto(t *testing.T, data []byte) perfettoTrace {
	t.Helper()
	p := perfettoTrace{threads: map[uint64]string{}, tids: map[uint64]uint64{}, names: map[uint64]string{},
		files: map[uint64]string{}, slices: map[uint64][]perfettoSlice{}}
	open := map[uint64][]perfettoSlice{}
	top := fields(t, data)
	for k := range top {
		if k != tracePacket {
			t.Fatalf("a Trace field %d", k)
		}
	}
	for i, raw := range top[tracePacket] {
		pkt := fields(t, raw.([]byte))
		if seq, _ := one[uint64](pkt, pktSequenceID); seq != sequenceID {
			t.Fatalf("packet %d: sequence %d", i, seq)
		}
		if flags, _ := one[uint64](pkt, pktSequenceFlags); i == 0 && flags != seqCleared {
			t.Errorf("the first packet does not clear the incremental state")
		}
		if d, ok := one[[]byte](pkt, pktTrackDesc); ok {
			desc := fields(t, d)
			u, _ := one[uint64](desc, descUUID)
			if th, ok := one[[]byte](desc, descThread); ok {
				tf := fields(t, th)
				name, _ := one[[]byte](tf, threadNameText)
				p.threads[u] = string(name)
				p.tids[u], _ = one[uint64](tf, threadTID)
			}
		}
		if in, ok := one[[]byte](pkt, pktInternedData); ok {
			inf := fields(t, in)
			for _, raw := range inf[internedNames] {
				nf := fields(t, raw.([]byte))
				iid, _ := one[uint64](nf, nameIID)
				name, _ := one[[]byte](nf, nameName)
				p.names[iid] = string(name)
			}
			for _, raw := range inf[internedLocations] {
				lf := fields(t, raw.([]byte))
				iid, _ := one[uint64](lf, locIID)
				file, _ := one[[]byte](lf, locFile)
				p.files[iid] = string(file)
			}
		}
		if ev, ok := one[[]byte](pkt, pktTrackEvent); ok {
			ef := fields(t, ev)
			ts, _ := one[uint64](pkt, pktTimestamp)
			typ, _ := one[uint64](ef, evType)
			track, _ := one[uint64](ef, evTrackUUID)
			if _, known := p.threads[track]; !known {
				t.Fatalf("an event on track %d, never described", track)
			}
			switch typ {
			case sliceBegin:
				iid, _ := one[uint64](ef, evNameIID)
				if p.names[iid] == "" {
					t.Fatalf("name %d used before it is interned", iid)
				}
				open[track] = append(open[track], perfettoSlice{p.names[iid], ts, 0})
			case sliceEnd:
				st := open[track]
				if len(st) == 0 {
					t.Fatalf("a slice end without its begin")
				}
				s := st[len(st)-1]
				open[track] = st[:len(st)-1]
				s.end = ts
				p.slices[track] = append(p.slices[track], s)
			default:
				t.Fatalf("event type %d", typ)
			}
		}
	}
	for track, st := range open {
		if len(st) > 0 {
			t.Errorf("track %d: %d slices never ended", track, len(st))
		}
	}
	return p
}

func TestPerfetto(t *testing.T) {
	p := readPerfetto(t, record(t, "perfetto", Options{}, session()))
	if len(p.threads) != 2 {
		t.Fatalf("tracks: %v", p.threads)
	}
	dur := map[string][]uint64{}
	for track, slices := range p.slices {
		for _, s := range slices {
			dur[s.name+"@"+p.threads[track]] = append(dur[s.name+"@"+p.threads[track]], s.end-s.start)
		}
	}
	want := map[string][]uint64{
		"Job.work@MainThread": {uint64(300 * ms)}, "fib@MainThread": {uint64(ms), uint64(3 * ms)},
		"fetch@MainThread": {uint64(ms), uint64(ms)}, "main@MainThread": {uint64(400 * ms)}, "wait@worker-1": {uint64(400 * ms)},
	}
	for k, w := range want {
		if fmt.Sprint(dur[k]) != fmt.Sprint(w) {
			t.Errorf("%s: %v, want %v", k, dur[k], w)
		}
	}
	if p.files[1] != "app.py" {
		t.Errorf("source locations: %v", p.files)
	}
}

// -a and --ret in a Chrome trace: the arguments at the slice's start, the
// value returned or the exception at its end.
func TestChromeTraceValues(t *testing.T) {
	withValue := func(e trace.Event, v string) trace.Event { e.Value, e.HasValue = v, true; return e }
	out := record(t, "chrometrace", Options{}, []trace.Event{
		withValue(ev(trace.Call, mainT, work, 0), "n=3\tname='x'"),
		withValue(ev(trace.Return, mainT, work, ms), "42"),
		ev(trace.Call, mainT, fib, 2*ms),
		withValue(ev(trace.Exception, mainT, fib, 3*ms), "ValueError('bad')"),
	})
	for _, want := range []string{`"arguments":"n=3, name='x'"`, `"return":"42"`, `"exception":"ValueError('bad')"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lacks %s:\n%s", want, out)
		}
	}
}
