package trace

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestFloatRepr(t *testing.T) {
	// repr() of each, as CPython 3 writes it.
	for f, want := range map[float64]string{
		1.5: "1.5", 0.1: "0.1", 1e16: "1e+16", 1e15: "1000000000000000.0",
		123456789012345678.0: "1.2345678901234568e+17", 1e-4: "0.0001", 1e-5: "1e-05",
		0.00012: "0.00012", -2.5e-7: "-2.5e-07", 3: "3.0", 1e22: "1e+22", 5e-324: "5e-324",
		math.MaxFloat64: "1.7976931348623157e+308", math.Copysign(0, -1): "-0.0", 0: "0.0",
		100: "100.0", 12345.678: "12345.678", math.Inf(-1): "-inf", math.NaN(): "nan",
	} {
		if got := floatRepr(f); got != want {
			t.Errorf("floatRepr(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestTextRepr(t *testing.T) {
	for _, c := range []struct {
		in    string
		bytes bool
		want  string
	}{
		{"", false, `''`}, {"it's", false, `"it's"`}, {`'"`, false, `'\'"'`},
		{"a\tb\n\r\x00\x7f\\", false, `'a\tb\n\r\x00\x7f\\'`}, {"\xff\x80z", true, `b'\xff\x80z'`},
	} {
		if got := textRepr([]byte(c.in), c.bytes); got != c.want {
			t.Errorf("textRepr(%q, %v) = %s, want %s", c.in, c.bytes, got, c.want)
		}
	}
}

func TestArgsRecord(t *testing.T) {
	p := &Process{codes: map[uint64]*Code{7: {Name: "f", ArgNames: []string{"a", "b", "c", "d"}}}}
	w := func(b []byte, v ...uint64) []byte {
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
		return b
	}
	rec := w(nil, 1<<61, 3<<32|7)
	rec = binary.LittleEndian.AppendUint32(rec, 4) // budget
	rec = w(rec, 1<<63|4<<56|(1<<56-5), 1<<63|5<<56, math.Float64bits(2.5), 1<<63|6<<56|10)
	rec = binary.LittleEndian.AppendUint32(rec, 4)
	rec = append(rec, "abcd"...)
	rec = w(rec, 1<<63|1<<56)
	id, text, err := argsRecord(p, rec)
	if err != nil || id != 1<<61 || text != "a=-5\tb=2.5\tc='abcd'...\td=None" {
		t.Fatalf("argsRecord = %d %q %v", id, text, err)
	}
	p.types = map[uint64]string{0x1000: "Thing"}
	id, text, err = argsRecord(p, w(append(w(nil, 5, 7), 8, 0, 0, 0), 1<<63|8<<56|0x7f00aa, 0x1000, 1<<63|8<<56|0x10, 0x2000))
	if err != nil || id != 5 || text != "a=<Thing at 0x7f00aa>\tb=<? at 0x10>" {
		t.Fatalf("argsRecord = %d %q %v", id, text, err)
	}
	for _, cut := range []int{19, len(rec) - 1, len(rec) - 9} {
		if _, _, err := argsRecord(p, rec[:cut]); err == nil {
			t.Errorf("a record cut at %d decoded", cut)
		}
	}
	// A return's value: a tuple of 20 items (16 in the record), cut as
	// values.py cuts it at a budget of 4.
	ret := binary.LittleEndian.AppendUint32(w(nil, 9, 1<<56|7), 4)
	ret = w(ret, 1<<63|9<<56|20)
	for i := 0; i < 16; i++ {
		ret = w(ret, 1<<63|4<<56|uint64(i))
	}
	if id, text, err := argsRecord(p, ret); err != nil || id != 9 || text != "(0, 1, ...)" {
		t.Errorf("a return's tuple: %d %q %v", id, text, err)
	}
	if _, _, err := argsRecord(p, w(ret, 1<<63|1<<56)); err == nil {
		t.Errorf("a return of two values decoded")
	}
	one := binary.LittleEndian.AppendUint32(w(nil, 9, 1<<56|7), 4)
	if _, text, _ := argsRecord(p, w(one, 1<<63|9<<56|1, 1<<63|1<<56)); text != "(None,)" {
		t.Errorf("a tuple of one: %q", text)
	}
}
