package trace

import (
	"encoding/binary"
	"testing"

	"github.com/lptrace/lptrace/transport"
)

func batch(pairs ...uint64) []byte {
	b := make([]byte, 8*len(pairs))
	for i, v := range pairs {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func TestDecode(t *testing.T) {
	var d Decoder
	var got []string
	emit := func(e Event) { got = append(got, e.Code.Name+"@"+e.Thread.Name) }
	recs := []transport.Record{
		{Kind: 'S', Data: []byte("42\t3.12.1 (main)")},
		{Kind: 'C', Data: []byte("1\tB.m\t/b.py\t7")}, // out of order: threads race
		{Kind: 'C', Data: []byte("0\tf\t/a.py\t3")},
		{Kind: 'T', Data: []byte("0\t1234\tMainThread")},
		{Kind: 'B', Data: batch(0<<32|0, 0<<32|1)},
		{Kind: 'D', Data: []byte("5")},
	}
	for _, r := range recs {
		if err := d.Decode(r, emit); err != nil {
			t.Fatalf("%c: %v", r.Kind, err)
		}
	}
	if d.PID != 42 || d.Version != "3.12.1 (main)" || d.Dropped != 5 {
		t.Errorf("pid %d version %q dropped %d", d.PID, d.Version, d.Dropped)
	}
	if len(got) != 2 || got[0] != "f@MainThread" || got[1] != "B.m@MainThread" {
		t.Errorf("events %v", got)
	}
	bad := []transport.Record{
		{Kind: 'B', Data: batch(7 << 32)},       // unknown thread
		{Kind: 'B', Data: []byte{1, 2, 3}},      // not a multiple of 8
		{Kind: 'C', Data: []byte("x\ty\tz\t1")}, // bad id
		{Kind: 'T', Data: []byte("1\t2")},       // short
		{Kind: '?', Data: nil},                  // unknown kind
	}
	for _, r := range bad {
		if err := d.Decode(r, emit); err == nil {
			t.Errorf("%c %q: accepted", r.Kind, r.Data)
		}
	}
}

// The target is untrusted: no input may make the decoder panic.
func FuzzDecode(f *testing.F) {
	f.Add(byte('C'), []byte("0\tf\t/a.py\t3"))
	f.Add(byte('T'), []byte("0\t1\tx"))
	f.Add(byte('B'), batch(0))
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var d Decoder
		d.Decode(transport.Record{Kind: 'C', Data: []byte("0\tf\ta\t1")}, func(Event) {})
		d.Decode(transport.Record{Kind: 'T', Data: []byte("0\t1\tx")}, func(Event) {})
		d.Decode(transport.Record{Kind: kind, Data: data}, func(e Event) {
			if e.Code == nil || e.Thread == nil {
				t.Fatal("event without code or thread")
			}
		})
	})
}
