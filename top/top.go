// Package top is lptrace top's screen: the hottest functions of a traced
// program by own time, total time, calls, calls per second and
// exceptions, refreshed every second, from the session's -c table (which
// the hook keeps inside the program). Keys sort, pause, split by thread
// and quit; bubbletea draws it.
package top

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
)

// Config is what the screen shows and where it gets it.
type Config struct {
	Title    string              // "process 1234 (Python 3.12.1)"
	Snapshot func() []report.Row // the table so far
	Dropped  func() uint64       // events lost so far
	Threads  bool                // the rows are per thread (they can be merged)
	Interval time.Duration       // between refreshes (default: a second)
}

// Sort keys, by number (1-5) and column initial.
const (
	byOwn = iota
	byTotal
	byCalls
	byRate
	byErrors
)

var sortNames = []string{"own time", "total time", "calls", "calls/s", "exceptions"}

// row is a line of the screen.
type row struct {
	key        string
	pid        int
	thread     *trace.Thread
	code       *trace.Code
	calls      uint64
	errors     uint64
	own, total time.Duration
	rate       float64
}

// Model is the screen's state (a bubbletea model).
type Model struct {
	cfg           Config
	sortBy        int
	paused        bool
	split         bool // per thread (Config.Threads)
	rows          []row
	prev          map[string]uint64 // calls at the previous refresh
	prevAt        time.Time
	start         time.Time
	width, height int
	ended         bool
}

// New makes the screen.
func New(cfg Config) *Model {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	return &Model{cfg: cfg, split: cfg.Threads, prev: map[string]uint64{}, start: time.Now(), width: 120, height: 30}
}

type tick struct{}

// ended is sent when the session is over (the program ended).
type ended struct{}

func (m *Model) Init() tea.Cmd {
	m.refresh()
	return m.next()
}

func (m *Model) next() tea.Cmd {
	return tea.Tick(m.cfg.Interval, func(time.Time) tea.Msg { return tick{} })
}

func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tick:
		if !m.paused {
			m.refresh()
		}
		return m, m.next()
	case ended:
		m.refresh()
		m.ended = true
		return m, tea.Quit
	case tea.KeyMsg:
		switch k := msg.String(); k {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case " ", "p":
			m.paused = !m.paused
		case "s":
			if m.cfg.Threads {
				m.split = !m.split
				m.refresh()
			}
		case "1", "2", "3", "4", "5":
			m.sortBy = int(k[0] - '1')
			m.order()
		case "o", "t", "c", "r", "e":
			m.sortBy = strings.Index("otcre", k)
			m.order()
		}
	}
	return m, nil
}

// refresh reads the table and works out each row's calls per second
// since the previous refresh.
func (m *Model) refresh() {
	now := time.Now()
	byKey := map[string]int{}
	var rows []row
	for _, r := range m.cfg.Snapshot() {
		if r.Code == nil {
			continue
		}
		key := strconv.Itoa(r.PID) + "\x00" + r.Code.Module + "\x00" + r.Code.Name + "\x00" + r.Code.File + "\x00" + strconv.Itoa(r.Code.Line)
		th := r.Thread
		if m.split && th != nil {
			key += "\x00" + strconv.Itoa(th.TID)
		} else {
			th = nil
		}
		if i, ok := byKey[key]; ok {
			x := &rows[i]
			x.calls += r.Calls
			x.errors += r.Errors
			x.own += r.Own
			x.total += r.Total
			continue
		}
		rows = append(rows, row{key: key, pid: r.PID, thread: th, code: r.Code, calls: r.Calls, errors: r.Errors, own: r.Own, total: r.Total})
		byKey[key] = len(rows) - 1
	}
	secs := now.Sub(m.prevAt).Seconds()
	prev := make(map[string]uint64, len(rows))
	for i := range rows {
		r := &rows[i]
		if p, ok := m.prev[r.key]; ok && secs > 0 && !m.prevAt.IsZero() && r.calls >= p {
			r.rate = float64(r.calls-p) / secs
		} else if m.prevAt.IsZero() {
			r.rate = float64(r.calls) / max(now.Sub(m.start).Seconds(), 1e-3)
		} else {
			r.rate = float64(r.calls) / secs
		}
		prev[r.key] = r.calls
	}
	m.prev, m.prevAt, m.rows = prev, now, rows
	m.order()
}

func (m *Model) order() {
	less := []func(a, b row) bool{
		func(a, b row) bool { return a.own > b.own },
		func(a, b row) bool { return a.total > b.total },
		func(a, b row) bool { return a.calls > b.calls },
		func(a, b row) bool { return a.rate > b.rate },
		func(a, b row) bool { return a.errors > b.errors },
	}[m.sortBy]
	sort.SliceStable(m.rows, func(i, j int) bool {
		if less(m.rows[i], m.rows[j]) != less(m.rows[j], m.rows[i]) {
			return less(m.rows[i], m.rows[j])
		}
		return m.rows[i].key < m.rows[j].key
	})
}

// View draws the screen.
func (m *Model) View() string {
	var b strings.Builder
	state := "running"
	if m.paused {
		state = "paused"
	}
	if m.ended {
		state = "ended"
	}
	var calls uint64
	var rate float64
	for _, r := range m.rows {
		calls += r.calls
		rate += r.rate
	}
	dropped := ""
	if m.cfg.Dropped != nil {
		if n := m.cfg.Dropped(); n > 0 {
			dropped = fmt.Sprintf(", %d events dropped", n)
		}
	}
	fmt.Fprintf(&b, "lptrace top: %s  %s  %s\n", m.cfg.Title, state, time.Since(m.start).Round(time.Second))
	fmt.Fprintf(&b, "%d functions, %d calls, %.0f calls/s%s\n", len(m.rows), calls, rate, dropped)
	keys := "sort: " + sortNames[m.sortBy] + "  (1-5 or o t c r e)  space: pause  q: quit"
	if m.cfg.Threads {
		keys += "  s: " + map[bool]string{true: "merge threads", false: "split by thread"}[m.split]
	}
	b.WriteString(keys + "\n\n")
	b.WriteString(m.table(max(m.height-6, 1)))
	return b.String()
}

// table is the rows' header and as many rows as fit in n lines.
func (m *Model) table(n int) string {
	var b strings.Builder
	var own time.Duration
	for _, r := range m.rows {
		own += r.own
	}
	thread := ""
	if m.split {
		thread = fmt.Sprintf("%-20s ", "THREAD")
	}
	fmt.Fprintf(&b, "%6s %10s %10s %10s %9s %6s  %s%s\n", "OWN%", "OWN s", "TOTAL s", "CALLS", "CALLS/S", "EXC", thread, "FUNCTION")
	for i, r := range m.rows {
		if i >= n-1 {
			break
		}
		pct := 0.0
		if own > 0 {
			pct = 100 * float64(r.own) / float64(own)
		}
		th := ""
		if m.split {
			name := ""
			if r.thread != nil {
				name = strconv.Itoa(r.thread.TID) + " " + r.thread.Name
			}
			th = fmt.Sprintf("%-20.20s ", termsafe.Escape([]byte(name), false))
		}
		line := fmt.Sprintf("%5.1f%% %10.6f %10.6f %10d %9.0f %6s  %s%s (%s:%d)", pct, r.own.Seconds(), r.total.Seconds(), r.calls, r.rate,
			count(r.errors), th, termsafe.Escape([]byte(r.code.Name), false), termsafe.Escape([]byte(r.code.File), false), r.code.Line)
		if m.width > 0 && len(line) > m.width {
			line = line[:m.width]
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func count(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

// Screen runs the model on a terminal until q, Ctrl-C or End.
type Screen struct {
	m *Model
	p *tea.Program
}

// NewScreen makes the screen on in and out (the terminal).
func NewScreen(ctx context.Context, m *Model, in io.Reader, out io.Writer) *Screen {
	return &Screen{m, tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))}
}

// Run shows it until the user quits or End is called.
func (s *Screen) Run() error {
	_, err := s.p.Run()
	if err == tea.ErrProgramKilled {
		err = nil // (the session's end)
	}
	return err
}

// End stops it: the session is over.
func (s *Screen) End() { s.p.Send(ended{}) }

// Final is the table as it stood last, for the terminal once the screen
// is gone.
func (m *Model) Final(rows int) string {
	return fmt.Sprintf("lptrace top: %s, %s, sorted by %s\n", m.cfg.Title, time.Since(m.start).Round(time.Second), sortNames[m.sortBy]) + m.table(rows)
}
