package wire

import "testing"

func TestDump(t *testing.T) {
	d := Dump{PID: 7}
	for _, r := range []struct {
		kind byte
		data string
	}{
		{StackStarted, "7"},
		{StackThread, "140\t7\tMainThread\t0\t1"},
		{StackFrame, "app.py\t3\tmain"},
		{StackLocal, "x\t1\t2"},
		{StackFrame, "app.py\t9\twork\tmore"},
		{StackTask, "Task-1\tpending\t<Future>"},
		{StackTaskFrame, "app.py\t20\tfetch"},
		{StackDone, ""},
	} {
		if err := d.Add(r.kind, []byte(r.data)); err != nil {
			t.Fatalf("%c %q: %v", r.kind, r.data, err)
		}
	}
	th := d.Threads[0]
	if !d.Done || th.TID != 7 || th.Ident != 140 || !th.Main || th.PID != 7 || len(th.Frames) != 2 ||
		th.Frames[0].Locals[0] != [2]string{"x", "1\t2"} || th.Frames[1].Function != "work\tmore" ||
		d.Tasks[0].Frames[0].Line != 20 || d.Tasks[0].Awaits != "<Future>" {
		t.Errorf("%+v %+v %+v", d, th, d.Tasks[0])
	}
	for _, bad := range []struct {
		kind byte
		data string
	}{{StackFrame, "a\t1\tf"}, {StackLocal, "x\t1"}, {StackTaskFrame, "a\t1\tf"}, {StackThread, "1\t2"}} {
		if err := (&Dump{}).Add(bad.kind, []byte(bad.data)); err != ErrBadData {
			t.Errorf("%c %q accepted", bad.kind, bad.data)
		}
	}
}

// Whatever the target sends, a dump never panics.
func FuzzDump(f *testing.F) {
	f.Add(StackThread, []byte("1\t2\tMainThread\t0\t1"), StackFrame, []byte("a.py\t1\tf"))
	f.Add(StackTask, []byte("t\ts\tw"), StackTaskFrame, []byte("a.py\tx\tf\tg"))
	f.Fuzz(func(t *testing.T, k1 byte, d1 []byte, k2 byte, d2 []byte) {
		var d Dump
		d.Add(k1, d1)
		d.Add(k2, d2)
		d.Add(StackLocal, d2)
	})
}
