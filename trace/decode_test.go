package trace

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/lptrace/lptrace/transport"
)

func batch(words ...uint64) []byte {
	b := make([]byte, 8*len(words))
	for i, v := range words {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func rec(kind byte, data string) transport.Record {
	return transport.Record{Kind: kind, Data: []byte(data)}
}

func TestDecode(t *testing.T) {
	var d Decoder
	var got []string
	var procs []*Process
	d.NewProcess = func(p *Process) { procs = append(procs, p) }
	emit := func(e Event) { got = append(got, e.Code.Name+"@"+e.Thread.Name+"/"+e.Kind.String()) }
	recs := []transport.Record{
		rec('S', "42\t1\t1000\t5000000000\t3.12.1 (main)\tprecompiled"),
		rec('C', "1\tB.m\t/b.py\t7\tpkg.b"), // out of order: threads race
		rec('C', "0\tf\t/a.py\t3"),          // no module (older hooks)
		rec('T', "0\t1234\tMainThread"),
		{Kind: 'B', Data: batch(0<<32|0, 0<<32|1, 1<<56|1, 2<<56|0)},
		rec('D', "5"),
		// A lost definition skips its events, not the session.
		{Kind: 'B', Data: batch(7<<32|0, 0<<32|9)},
		rec('C', "1\tB.m\t/b.py\t7\tpkg.b"), // defined twice: allowed
	}
	for _, r := range recs {
		if err := d.Decode(r, emit); err != nil {
			t.Fatalf("%c: %v", r.Kind, err)
		}
	}
	if len(procs) != 1 || procs[0].PID != 42 || procs[0].PPID != 1 || procs[0].Version != "3.12.1 (main)" || procs[0].Loaded != "precompiled" || d.Dropped != 5 || procs[0].Dropped != 5 || d.Undefined != 2 {
		t.Errorf("procs %+v dropped %d undefined %d", procs, d.Dropped, d.Undefined)
	}
	want := []string{"f@MainThread/call", "B.m@MainThread/call", "B.m@MainThread/return", "f@MainThread/exception"}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %s, want %s", i, got[i], want[i])
		}
	}
	bad := []transport.Record{
		{Kind: 'B', Data: batch(3 << 56)},  // unknown kind
		{Kind: 'B', Data: []byte{1, 2, 3}}, // not a multiple of 8
		rec('C', "x\ty\tz\t1"),             // bad id
		rec('T', "1\t2"),                   // short
		rec('V', "novalue"),                // no tab
		rec('P', "-3"),                     // bad pid
		rec('S', "1\t2"),                   // short
		{Kind: '?'},                        // unknown kind
	}
	for _, r := range bad {
		if err := d.Decode(r, emit); err == nil {
			t.Errorf("%c %q: accepted", r.Kind, r.Data)
		}
	}
}

// Times and values: each event is 3 words; a value is used once.
func TestDecodeTimesValues(t *testing.T) {
	d := Decoder{Times: true, Values: true}
	var got []Event
	emit := func(e Event) { got = append(got, e) }
	for _, r := range []transport.Record{
		rec('S', "42\t1\t1000\t5000000000\t3.12.1"),
		rec('C', "0\tf\t/a.py\t3\tm"),
		rec('T', "0\t1234\tMainThread"),
		rec('V', "0\ta=1\tb='x'"),
		rec('V', "1\t2"),
		{Kind: 'B', Data: batch(0, 1500, 1, 1<<56, 4000, 2, 0, 5000, 0)},
	} {
		if err := d.Decode(r, emit); err != nil {
			t.Fatalf("%c: %v", r.Kind, err)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	if !got[0].HasValue || got[0].Value != "a=1\tb='x'" || got[0].Clock != 1500 || !got[0].Time.Equal(time.Unix(5, 500)) {
		t.Errorf("call: %+v", got[0])
	}
	if got[1].Kind != Return || got[1].Value != "2" {
		t.Errorf("return: %+v", got[1])
	}
	if got[2].HasValue {
		t.Errorf("event without value: %+v", got[2])
	}
	if err := d.Decode(transport.Record{Kind: 'B', Data: batch(0, 1)}, emit); err == nil {
		t.Error("batch of a partial event accepted")
	}
}

// Following forks: records of several processes, each with its own tables.
func TestDecodeProcesses(t *testing.T) {
	var d Decoder
	var got []int
	emit := func(e Event) { got = append(got, e.Proc.PID) }
	for _, r := range []transport.Record{
		rec('P', "10"), rec('S', "10\t1\t0\t0\tv"), rec('C', "0\tf\ta\t1"), rec('T', "0\t10\tx"),
		rec('P', "11"), rec('S', "11\t10\t0\t0\tv"), rec('C', "0\tg\ta\t1"), rec('T', "0\t11\tx"),
		rec('P', "10"), {Kind: 'B', Data: batch(0)},
		rec('P', "11"), {Kind: 'B', Data: batch(0)},
	} {
		if err := d.Decode(r, emit); err != nil {
			t.Fatalf("%c %q: %v", r.Kind, r.Data, err)
		}
	}
	if d.Processes() != 2 || len(got) != 2 || got[0] != 10 || got[1] != 11 {
		t.Errorf("processes %d, events from %v", d.Processes(), got)
	}
	var fresh Decoder
	if err := fresh.Decode(rec('C', "0\tf\ta\t1"), emit); err == nil {
		t.Error("definition before any start record accepted")
	}
}

// The target is untrusted: no input may make the decoder panic.
func FuzzDecode(f *testing.F) {
	f.Add(byte('C'), []byte("0\tf\t/a.py\t3\tm"), false, false)
	f.Add(byte('T'), []byte("0\t1\tx"), false, false)
	f.Add(byte('B'), batch(0), false, false)
	f.Add(byte('B'), batch(0, 1, 1), true, true)
	f.Add(byte('V'), []byte("0\tx"), false, true)
	f.Add(byte('P'), []byte("7"), false, false)
	f.Add(byte('A'), make([]byte, 40), true, false)
	f.Fuzz(func(t *testing.T, kind byte, data []byte, times, values bool) {
		d := Decoder{Times: times, Values: values}
		d.Decode(rec('S', "1\t0\t0\t0\tv"), func(Event) {})
		d.Decode(rec('C', "0\tf\ta\t1"), func(Event) {})
		d.Decode(rec('T', "0\t1\tx"), func(Event) {})
		d.Decode(transport.Record{Kind: kind, Data: data}, func(e Event) {
			// (a count of the table the hook keeps is of no thread; time
			// nested in a call is of no function)
			if e.Proc == nil || (e.Code == nil && e.Kind != Nested) || (e.Thread == nil && e.Kind != Counted) {
				t.Fatalf("%v event without code, thread or process", e.Kind)
			}
		})
	})
}

// A program that starts a thread per request defines a thread for each:
// past the limit the ones idle the longest are forgotten, not the session;
// one that is busy stays, and a definition sent twice keeps its thread.
func TestDecodeManyThreads(t *testing.T) {
	var d Decoder
	var last *Thread
	emit := func(e Event) { last = e.Thread }
	must := func(r transport.Record) {
		t.Helper()
		if err := d.Decode(r, emit); err != nil {
			t.Fatalf("%c %q: %v", r.Kind, r.Data, err)
		}
	}
	must(rec('S', "42\t1\t1000\t5000000000\t3.12.1"))
	must(rec('C', "0\tf\t/a.py\t3"))
	must(rec('T', "0\t42\tMainThread"))
	must(transport.Record{Kind: 'B', Data: batch(0)})
	main := last
	for i := uint64(1); i < 3*maxThreads; i++ {
		must(rec('T', fmt.Sprintf("%d\t%d\tw", i, 1000+i)))
		must(transport.Record{Kind: 'B', Data: batch(i<<32, 0)}) // the new thread, then the main one
	}
	if n := len(d.cur.threads); n > maxThreads {
		t.Errorf("%d threads kept, limit %d", n, maxThreads)
	}
	must(transport.Record{Kind: 'B', Data: batch(0)})
	if last != main {
		t.Errorf("the busy main thread was forgotten or replaced")
	}
	must(rec('T', "0\t42\tMainThread"))
	must(transport.Record{Kind: 'B', Data: batch(0)})
	if last != main {
		t.Errorf("a definition sent again made a new thread")
	}
}

// The value words the machine code writes (hook/asm/native_values_amd64.s).
func TestInlineValue(t *testing.T) {
	word := func(tag, payload uint64) uint64 { return 1<<63 | tag<<56 | payload&(1<<56-1) }
	neg := func(n int64) uint64 { return uint64(n) }
	for _, c := range []struct {
		v    uint64
		want string
	}{
		{word(1, 0), "None"}, {word(2, 0), "False"}, {word(3, 0), "True"},
		{word(4, 0), "0"}, {word(4, 42), "42"}, {word(4, neg(-1)), "-1"},
		{word(4, 1<<55-1), "36028797018963967"}, {word(4, neg(-1<<55)), "-36028797018963968"},
	} {
		if got, ok := inlineValue(c.v); !ok || got != c.want {
			t.Errorf("%#x: %q %v, want %q", c.v, got, ok, c.want)
		}
	}
	if _, ok := inlineValue(word(9, 0)); ok {
		t.Error("an unknown tag made a value")
	}
}

// A resumption and a suspension carry the frame the event before them
// named (kind 6); no other event does, and the name is used once.
func TestDecodeFrames(t *testing.T) {
	d := Decoder{Times: true}
	var got []Event
	emit := func(e Event) { got = append(got, e) }
	for _, r := range []transport.Record{
		rec('S', "42\t1\t1000\t5000000000\t3.12.1"),
		rec('C', "0\tf\t/a.py\t3\tm"),
		rec('T', "0\t1234\tMainThread"),
		{Kind: 'B', Data: batch(6<<56|0xabc, 10, 5<<56, 11, 4<<56, 12, 6<<56|0xdef, 13, 0, 14, 4<<56, 15)},
	} {
		if err := d.Decode(r, emit); err != nil {
			t.Fatalf("%c: %v", r.Kind, err)
		}
	}
	want := []struct {
		kind  Kind
		frame uint64
	}{{Suspend, 1<<32 | 0xabc}, {Resume, 0}, {Call, 0}, {Resume, 0}}
	if len(got) != len(want) {
		t.Fatalf("%d events: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Frame != w.frame {
			t.Errorf("event %d: %v frame %#x, want %v frame %#x", i, got[i].Kind, got[i].Frame, w.kind, w.frame)
		}
	}
}
