package top

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/trace"
)

// The screen's table from rows per thread: merged by default when split
// is off, split on s, sorted by each key, calls/s from the change since
// the previous refresh.
func TestModel(t *testing.T) {
	a, b := &trace.Thread{TID: 1, Name: "MainThread"}, &trace.Thread{TID: 2, Name: "worker\x1b[31m"}
	f := &trace.Code{Name: "f", File: "app.py", Line: 1}
	g := &trace.Code{Name: "g", File: "app.py", Line: 5}
	calls := uint64(10)
	snap := func() []report.Row {
		return []report.Row{
			{PID: 7, Thread: a, Code: f, Calls: calls, Own: 3 * time.Second, Total: 4 * time.Second},
			{PID: 7, Thread: b, Code: f, Calls: calls, Own: time.Second, Total: time.Second, Errors: 2},
			{PID: 7, Thread: a, Code: g, Calls: 100, Own: time.Second, Total: time.Second},
		}
	}
	m := New(Config{Title: "process 7", Snapshot: snap, Threads: true})
	m.Init()
	if len(m.rows) != 3 || !strings.Contains(m.View(), "THREAD") || strings.Contains(m.View(), "\x1b") {
		t.Fatalf("split rows: %+v\n%s", m.rows, m.View())
	}
	m.Update(tea.KeyMsg(tea.Key{Type: tea.KeyRunes, Runes: []rune("s")}))
	if len(m.rows) != 2 || m.rows[0].code != f || m.rows[0].own != 4*time.Second || m.rows[0].errors != 2 {
		t.Fatalf("merged rows: %+v", m.rows)
	}
	for key, first := range map[string]*trace.Code{"3": g, "2": f, "e": f, "c": g, "o": f} {
		m.Update(tea.KeyMsg(tea.Key{Type: tea.KeyRunes, Runes: []rune(key)}))
		if m.rows[0].code != first {
			t.Errorf("key %s: %s first", key, m.rows[0].code.Name)
		}
	}
	m.prevAt = time.Now().Add(-2 * time.Second)
	calls += 40
	m.refresh()
	for _, r := range m.rows {
		if r.code == f && (r.rate < 39 || r.rate > 41) {
			t.Errorf("f: %.1f calls/s, want 40 (80 calls in 2 s)", r.rate)
		}
	}
	if _, cmd := m.Update(tea.KeyMsg(tea.Key{Type: tea.KeyRunes, Runes: []rune("q")})); cmd == nil {
		t.Error("q does not quit")
	}
}
