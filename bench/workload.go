package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func startWorkload(py, mode string, args ...string) *workload {
	return startWorkloadWith(py, nil, mode, args...)
}

// startWorkloadWith runs the workload with options of the interpreter's
// before it (-m cProfile).
func startWorkloadWith(py string, pyArgs []string, mode string, args ...string) *workload {
	return startWorkloadEnv(py, nil, pyArgs, mode, args...)
}

// startWorkloadEnv runs the workload with more environment variables
// (LPTRACE_BENCH_FLOOR): nil if it says it cannot do what they ask.
func startWorkloadEnv(py string, env, pyArgs []string, mode string, args ...string) *workload {
	argv := append(append(append([]string(nil), pyArgs...), "bench/workload.py", mode), args...)
	cmd := exec.Command(py, argv...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		fatal("%s: %v", py, err)
	}
	w := &workload{cmd: cmd, rates: make(chan float64, 1000)}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" || sc.Text() == "NO FLOOR" {
				ready <- sc.Text() == "READY"
			}
			if v, ok := strings.CutPrefix(sc.Text(), "rate "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				select {
				case w.rates <- f:
				default:
				}
			}
		}
	}()
	if !<-ready {
		w.stop()
		return nil
	}
	time.Sleep(300 * time.Millisecond)
	return w
}

func (w *workload) stop() { w.cmd.Process.Kill(); w.cmd.Wait() }

// rate is the median of the next n rate samples, after dropping those
// already queued.
func (w *workload) rate(n int) float64 {
	for len(w.rates) > 0 {
		<-w.rates
	}
	<-w.rates // a sample that may straddle a change
	var s []float64
	for i := 0; i < n; i++ {
		s = append(s, <-w.rates)
	}
	return median(s)
}

func attach(pid int, out string, extra ...string) *session {
	s := &session{out: out, attached: make(chan time.Time, 1), done: make(chan struct{})}
	args := append([]string{"attach", "-o", out}, extra...)
	s.cmd = exec.Command(*lptraceBin, append(args, strconv.Itoa(pid))...)
	s.cmd.Env = append(os.Environ(), "LPTRACE_TIMING=1")
	pipe, _ := s.cmd.StderrPipe()
	if err := s.cmd.Start(); err != nil {
		fatal("lptrace: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.stderr.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), " attached ") {
				s.attached <- time.Now()
			}
		}
		s.cmd.Wait()
		close(s.done)
	}()
	return s
}

func (s *session) waitAttached() time.Time {
	select {
	case t := <-s.attached:
		return t
	case <-s.done:
		fatal("lptrace exited: %s", s.stderr.String())
	case <-time.After(20 * time.Second):
		fatal("lptrace did not attach in 20 s")
	}
	return time.Time{}
}

// stop sends SIGINT and returns how long lptrace took to detach and exit.
func (s *session) stop() time.Duration {
	t := time.Now()
	s.cmd.Process.Signal(unix.SIGINT)
	<-s.done
	return time.Since(t)
}

// firstEvent waits until the trace file has its first event and returns
// the time since start.
func firstEvent(out string, start time.Time) time.Duration {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
		if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
			return time.Since(start)
		}
	}
	fatal("no event in %s within 20 s", out)
	return 0
}

// dropped is the count lptrace reported at its exit.
func dropped(stderr string) int64 {
	m := regexp.MustCompile(`(\d+) events were dropped`).FindStringSubmatch(stderr)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// cpu is a process's user+system CPU time in seconds.
func cpu(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ
}

// rss reads a field of /proc/PID/status, in KiB.
func rss(pid int, field string) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return f
		}
	}
	return 0
}

func lines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' {
				n++
			}
		}
		if err != nil {
			return n
		}
	}
}

// workload runs bench/workload.py MODE; rates receives its "rate" lines.
type workload struct {
	cmd   *exec.Cmd
	rates chan float64
}

// session is a running `lptrace attach`.
type session struct {
	cmd      *exec.Cmd
	out      string
	attached chan time.Time
	stderr   strings.Builder
	done     chan struct{}
}
