package report

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lptrace/lptrace/trace"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		sortBy string
		rows   string
	}{
		// Own time: outer's 10ms less inner's 3ms.
		{"", rowOuter + rowInner + rowOther},
		{"time", rowOuter + rowInner + rowOther},
		{"total", rowOuter + rowInner + rowOther},
		// Ties are broken by name.
		{"calls", rowInner + rowOther + rowOuter},
		{"errors", rowInner + rowOther + rowOuter},
		{"name", rowInner + rowOther + rowOuter},
	}
	for _, tt := range tests {
		t.Run("sort "+tt.sortBy, func(t *testing.T) {
			got := summary(t, Options{Summary: true, SortBy: tt.sortBy}, 0, summaryEvents()...)
			if want := sumHeader + tt.rows + sumTotal; got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestSummaryDropped(t *testing.T) {
	got := summary(t, Options{Summary: true}, 7, summaryEvents()...)
	want := sumHeader + rowOuter + rowInner + rowOther + sumTotal +
		"lptrace: 7 events were dropped (lptrace fell behind: its buffer in the process was full): the counts above are incomplete\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	p := NewPrinter(&bytes.Buffer{}, Options{})
	p.AddDropped(3)
	p.AddDropped(4)
	if n := p.Dropped(); n != 7 {
		t.Errorf("Dropped() = %d, want 7", n)
	}
}

func TestSummaryRecursion(t *testing.T) {
	// f -> f: the inner call's time is the outer one's child, so the own
	// times add up to the wall time once, not twice; the total is the
	// outermost call's (it was the sum over both, 6 ms of a 4 ms run).
	events := []trace.Event{call(outer, 1000*ms), call(outer, 1001*ms), ret(outer, 1003*ms), ret(outer, 1004*ms)}
	got := summary(t, Options{Summary: true, Trace: true}, 0, events...)
	row := "100.00    0.004000    0.004000        2000         2           outer (app.py:1)\n"
	total := "------ ----------- ----------- ----------- --------- --------- ----------------\n" +
		"100.00    0.004000                                 2           total\n"
	if want := sumHeader + row + total; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSummaryEmpty(t *testing.T) {
	got := summary(t, Options{Summary: true}, 0)
	want := sumHeader + "------ ----------- ----------- ----------- --------- --------- ----------------\n" +
		"100.00    0.000000                                 0           total\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// -c -p A -p B: a table per process, never their sum.
func TestSummaryPerProcess(t *testing.T) {
	var b strings.Builder
	p := NewPrinter(&b, Options{Summary: true})
	proc2, thread2 := &trace.Process{PID: 200}, &trace.Thread{TID: 200}
	base := 1000 * ms // (clock 0 means no times)
	p.Event(call(outer, base))
	p.Event(ret(outer, base+1000))
	for _, clock := range []int64{base, base + 5000} {
		e := call(outer, clock)
		e.Proc, e.Thread = proc2, thread2
		p.Event(e)
		e = ret(outer, clock+2000)
		e.Proc, e.Thread = proc2, thread2
		p.Event(e)
	}
	if err := p.WriteSummary(&b, 0); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	first, second, ok := strings.Cut(got, "\nprocess 200:\n")
	row := func(secs string, calls int) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^\s*100\.00\s+` + secs + `\s+` + secs + `\s+\d+\s+` + strconv.Itoa(calls) + `\s+outer`)
	}
	if !ok || !strings.HasPrefix(first, "process 100:\n") || !row(`0\.000001`, 1).MatchString(first) || !row(`0\.000004`, 2).MatchString(second) {
		t.Errorf("got:\n%s", got)
	}
}
