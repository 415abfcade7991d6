package tests

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxSession is a detached tmux session on a server of its own.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, width, height int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("no tmux: apt-get install tmux")
	}
	s := &tmuxSession{t, fmt.Sprintf("lptrace-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	if out, err := exec.Command("tmux", "-L", s.socket, "new-session", "-d", "-s", "top", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height),
		command).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) keys(keys ...string) {
	if out, err := exec.Command("tmux", append([]string{"-L", s.socket, "send-keys", "-t", "top"}, keys...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

func (s *tmuxSession) screen() string {
	out, _ := exec.Command("tmux", "-L", s.socket, "capture-pane", "-p", "-t", "top").Output()
	return string(out)
}

// waitFor waits until the screen matches re; the screen.
func (s *tmuxSession) waitFor(re string, within time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		sc := s.screen()
		if regexp.MustCompile(re).MatchString(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %q:\n%s", re, sc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// topRow reads a function's row: its calls.
func topRow(screen, fn string) (calls int, ok bool) {
	m := regexp.MustCompile(`(?m)^\s*[\d.]+%\s+[\d.]+\s+[\d.]+\s+(\d+)\s+\d+\s+(?:\d+\s+)?` + regexp.QuoteMeta(fn) + ` \(`).FindStringSubmatch(screen)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	return n, true
}

// lptrace top in a real terminal (tmux) on a busy program: rows appear and
// update, keys sort and pause, q quits with the last table on the
// terminal, and the program runs on untraced.
func TestTop(t *testing.T) {
	for _, py := range []Python{newest(t), oldest(t)} {
		t.Run(py.Name, func(t *testing.T) {
			tg := startProgram(t, py, "spinners.py")
			tg.waitTicks(t, 2, 10*time.Second)
			s := newTmux(t, 160, 30, fmt.Sprintf("%s top %d; echo TOP-EXIT=$?; sleep 60", lptraceBin, tg.PID))
			first := s.waitFor(`spin_step \(`, 20*time.Second)
			if !strings.Contains(first, "sort: own time") || !strings.Contains(first, "CALLS/S") {
				t.Errorf("the screen:\n%s", first)
			}
			calls, ok := topRow(first, "spin_step")
			if !ok {
				t.Fatalf("no row of spin_step:\n%s", first)
			}
			time.Sleep(2500 * time.Millisecond)
			later := s.screen()
			if n, _ := topRow(later, "spin_step"); n <= calls {
				t.Errorf("spin_step's calls did not grow (%d, then %d):\n%s", calls, n, later)
			}
			// Sort by calls (3), then by exceptions (e): the header says so
			// and spin_step, called most, leads in the first.
			s.keys("3")
			sc := s.waitFor(`sort: calls`, 5*time.Second)
			rows := regexp.MustCompile(`(?m)^\s*[\d.]+%\s+[\d.]+\s+[\d.]+\s+(\d+)`).FindAllStringSubmatch(sc, -1)
			for i := 1; i < len(rows); i++ {
				a, _ := strconv.Atoi(rows[i-1][1])
				b, _ := strconv.Atoi(rows[i][1])
				if a < b {
					t.Errorf("not sorted by calls:\n%s", sc)
					break
				}
			}
			s.keys("e")
			s.waitFor(`sort: exceptions`, 5*time.Second)
			// Paused: the numbers stand still.
			s.keys("Space")
			paused := s.waitFor(`paused`, 5*time.Second)
			time.Sleep(2200 * time.Millisecond)
			a, _ := topRow(paused, "spin_step")
			b, _ := topRow(s.screen(), "spin_step")
			if a != b {
				t.Errorf("paused, yet spin_step's calls went from %d to %d", a, b)
			}
			s.keys("q")
			end := s.waitFor(`TOP-EXIT=\d+`, 15*time.Second)
			if !strings.Contains(end, "TOP-EXIT=0") || !strings.Contains(end, "lptrace top: process") || !strings.Contains(end, "spin_step (") {
				t.Errorf("after q:\n%s", end)
			}
			hookGone(t, tg.PID, 3*time.Second)
			tg.waitTicks(t, 3, 5*time.Second)
		})
	}
}

// Without a terminal, top says what to use instead.
func TestTopNeedsTerminal(t *testing.T) {
	r := lptrace(t, "", "top", "1")
	if r.Code != 2 || !strings.Contains(r.Stderr, "lptrace -c -p PID") {
		t.Errorf("status %d: %s", r.Code, r.Stderr)
	}
}
