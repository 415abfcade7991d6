// Command bench measures lptrace side by side in one run, as ratios (the
// machine is shared and noisy): attach and detach latency (and the gdb way
// of injecting, when gdb is installed), the target's slowdown while traced
// per Python, throughput, and lptrace's own CPU and memory. It prints a
// table and writes JSON.
//
//	bench/run.sh                      builds lptrace, runs everything
//	go run ./bench -quick             fewer runs and interpreters
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	lptraceBin = flag.String("lptrace", "bin/lptrace", "the lptrace binary")
	pythonList = flag.String("pythons", os.Getenv("LPTRACE_PYTHONS"), "colon-separated interpreters (default: every one found)")
	runs       = flag.Int("runs", 20, "attach/detach runs per case")
	jsonOut    = flag.String("json", "bench/results.json", "where to write the results")
	only       = flag.String("only", "", "comma-separated parts to run: latency, overhead, modes, throughput (default: all)")
	quick      = flag.Bool("quick", false, "5 runs, and the overhead of the newest and oldest interpreters only")
	tables     = flag.String("tables", "", "print the markdown tables of docs/performance.md from this results file, and run nothing")
)

// Results is what the JSON file holds.
type Results struct {
	When       time.Time    `json:"when"`
	Latency    []Latency    `json:"latency"`
	Overhead   []Overhead   `json:"overhead"`
	Modes      []Modes      `json:"modes"`
	Throughput []Throughput `json:"throughput"`
}

// Modes is a workload's speed in units/s untraced, under cProfile (run
// in-process by python -m cProfile, the C profiler users know), and traced
// in each of lptrace's modes (tracingModes).
type Modes struct {
	Python, Workload string
	Untraced         float64
	CProfile         float64
	// Floor: with the least that timing every call through sys.monitoring
	// costs (3.12+, x86-64: workload.py's floor()); 0 where not measured.
	Floor  float64 `json:",omitempty"`
	Traced map[string]float64
}

// tracingModes are the modes measured beside cProfile, by name.
var tracingModes = []struct {
	Name string
	Args []string
}{
	{"calls", nil}, {"-c", []string{"-c"}}, {"-C", []string{"-C"}}, {"-T", []string{"-T"}}, {"-t", []string{"-t"}},
	{"-T -e", []string{"-T", "-e", "*i*"}}, {"--json", []string{"--json"}},
	{"--ret", []string{"--ret"}}, {"-a", []string{"-a"}},
}

// Latency of attach (lptrace start to hook installed, and to first event)
// and detach (signal to exit), in milliseconds.
type Latency struct {
	Python, Target                  string
	AttachMedian, AttachP95         float64
	FirstEventMedian, FirstEventP95 float64 `json:",omitempty"`
	DetachMedian, DetachP95         float64
	GdbMedian                       float64 `json:",omitempty"` // the same injection driven by gdb
	GdbFailed                       string  `json:",omitempty"` // why gdb could not make the calls
	Runs                            int
	// The first attach to a process (each run a new one, a call loop): the
	// hook then also imports what the process has not loaded yet.
	FreshAttachMedian, FreshFirstEventMedian float64 `json:",omitempty"`
	FreshRuns                                int     `json:",omitempty"`
	// Phases: the median time at which each phase of an attach ended, in
	// ms since lptrace's start (LPTRACE_TIMING=1), in their order.
	Phases []Phase `json:",omitempty"`
}

// Phase is one step of an attach as lptrace's LPTRACE_TIMING names it.
type Phase struct {
	Name     string
	MedianMs float64
}

// Overhead is the target's speed in units/s, untraced and in each mode.
type Overhead struct {
	Python, Workload                        string
	Untraced, Traced, FilteredOut, Detached float64
}

// Throughput of one streaming session.
type Throughput struct {
	Python                 string
	EventsPerSec           float64
	Dropped                int64
	LptraceCPUStreamingPct float64
	LptraceCPUIdlePct      float64
	LptraceRSSMiB          float64
	TargetExtraRSSMiB      float64
	// Below saturation: a program paced at PacedRate calls (events) a
	// second, traced into a file for 2 s.
	PacedRate         float64
	PacedEventsPerSec float64
	PacedDropped      int64
	// The same with -T at TimedRate calls a second (two events each: a
	// call and a return, each with its time), and lptrace's CPU.
	TimedRate         float64
	TimedEventsPerSec float64
	TimedDropped      int64
	TimedCPUPct       float64
}

func main() {
	flag.Parse()
	if *tables != "" {
		tablesFrom(*tables)
		return
	}
	if *quick {
		*runs = 5
	}
	pys := interpreters()
	if len(pys) == 0 {
		fatal("no Python interpreter found (set -pythons)")
	}
	if _, err := os.Stat(*lptraceBin); err != nil {
		fatal("no lptrace binary at %s: build it (bench/run.sh does)", *lptraceBin)
	}
	res := Results{When: time.Now().UTC()}
	newest, oldest := pys[len(pys)-1], pys[0]
	for _, py := range uniq(newest, pick(pys, "3.11")) {
		if !part("latency") {
			break
		}
		for _, target := range []string{"loop", "idle", "accept"} {
			l := latency(py, target)
			res.Latency = append(res.Latency, l)
			gdb := fmt.Sprintf("gdb %6.1f ms", l.GdbMedian)
			if l.GdbFailed != "" {
				gdb = "gdb failed: " + l.GdbFailed
			}
			fmt.Printf("latency  %-8s %-6s attach %6.1f ms (p95 %6.1f)  first event %6.1f ms  detach %6.1f ms (p95 %6.1f)  %s\n",
				name(py), target, l.AttachMedian, l.AttachP95, l.FirstEventMedian, l.DetachMedian, l.DetachP95, gdb)
			var ph []string
			for _, p := range l.Phases {
				ph = append(ph, fmt.Sprintf("%s %.1f", p.Name, p.MedianMs))
			}
			fmt.Printf("         phases (median ms since lptrace started): %s\n", strings.Join(ph, ", "))
			if l.FreshRuns > 0 {
				fmt.Printf("         first attach to a new process (%d runs): attach %.1f ms, first event %.1f ms\n", l.FreshRuns, l.FreshAttachMedian, l.FreshFirstEventMedian)
			}
		}
	}
	over := pys
	if *quick {
		over = uniq(oldest, newest)
	}
	for _, py := range over {
		if !part("overhead") {
			break
		}
		for _, w := range []string{"loop", "fib", "mix", "http"} {
			o := overhead(py, w)
			res.Overhead = append(res.Overhead, o)
			fmt.Printf("overhead %-8s %-4s untraced %11.0f/s  traced %5.2fx slower  filtered out %5.2fx  after detach %5.2fx\n",
				name(py), w, o.Untraced, ratio(o.Untraced, o.Traced), ratio(o.Untraced, o.FilteredOut), ratio(o.Untraced, o.Detached))
		}
	}
	for _, py := range over {
		if !part("modes") {
			break
		}
		for _, w := range []string{"loop", "fib"} {
			m := modes(py, w)
			res.Modes = append(res.Modes, m)
			line := fmt.Sprintf("modes    %-8s %-4s cProfile %5.1fx", name(py), w, ratio(m.Untraced, m.CProfile))
			if m.Floor > 0 {
				line += fmt.Sprintf("  floor %5.1fx", ratio(m.Untraced, m.Floor))
			}
			for _, mode := range tracingModes {
				line += fmt.Sprintf("  %s %5.1fx", mode.Name, ratio(m.Untraced, m.Traced[mode.Name]))
			}
			fmt.Println(line)
		}
	}
	for _, py := range uniq(newest, pick(pys, "3.11")) {
		if !part("throughput") {
			break
		}
		t := throughput(py)
		res.Throughput = append(res.Throughput, t)
		fmt.Printf("stream   %-8s %8.0f events/s delivered, %d dropped; lptrace CPU %.1f%% streaming, %.2f%% idle; lptrace RSS %.1f MiB; target +%.1f MiB\n",
			name(py), t.EventsPerSec, t.Dropped, t.LptraceCPUStreamingPct, t.LptraceCPUIdlePct, t.LptraceRSSMiB, t.TargetExtraRSSMiB)
		fmt.Printf("         paced at %.0f events/s: %.0f events/s delivered, %d dropped\n", t.PacedRate, t.PacedEventsPerSec, t.PacedDropped)
		fmt.Printf("         -T paced at %.0f calls/s: %.0f events/s delivered, %d dropped; lptrace CPU %.1f%%\n", t.TimedRate, t.TimedEventsPerSec, t.TimedDropped, t.TimedCPUPct)
	}
	data, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
		fatal("%v", err)
	}
	fmt.Printf("results written to %s\n", *jsonOut)
}

// part tells whether -only selects this part of the suite.
func part(name string) bool {
	if *only == "" {
		return true
	}
	for _, p := range strings.Split(*only, ",") {
		if strings.TrimSpace(p) == name {
			return true
		}
	}
	return false
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(1)
}

var pyName = regexp.MustCompile(`python(\d\.\d+)$`)

func name(py string) string {
	n := pyName.FindStringSubmatch(py)
	if n == nil {
		return filepath.Base(py)
	}
	if strings.HasPrefix(py, "/usr/bin/") {
		return n[1] + "-deb"
	}
	return n[1]
}

// interpreters lists the pythons, oldest first.
func interpreters() []string {
	var list []string
	if *pythonList != "" {
		list = strings.Split(*pythonList, ":")
	} else {
		root, _ := exec.Command("pyenv", "root").Output()
		r := strings.TrimSpace(string(root))
		if r == "" {
			r = os.Getenv("HOME") + "/.pyenv"
		}
		m, _ := filepath.Glob(r + "/versions/*/bin/python[23].*")
		list = append(list, m...)
		if out, err := exec.Command("bash", "../shared/newest-pythons.sh").Output(); err == nil {
			list = append(list, strings.Fields(string(out))...)
		}
	}
	var out []string
	for _, p := range list {
		if pyName.MatchString(p) && exec.Command(p, "-c", "pass").Run() == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return version(out[i]) < version(out[j]) })
	return out
}

func version(py string) int {
	n := pyName.FindStringSubmatch(py)
	if n == nil {
		return 0
	}
	ma, mi, _ := strings.Cut(n[1], ".")
	a, _ := strconv.Atoi(ma)
	b, _ := strconv.Atoi(mi)
	return a*100 + b
}

func pick(pys []string, v string) string {
	for _, p := range pys {
		if name(p) == v {
			return p
		}
	}
	return ""
}

func uniq(ps ...string) []string {
	var out []string
	for _, p := range ps {
		if p != "" && (len(out) == 0 || out[len(out)-1] != p) {
			out = append(out, p)
		}
	}
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func latency(py, target string) Latency {
	w := startWorkload(py, target)
	dir, _ := os.MkdirTemp("", "lptrace-bench")
	defer os.RemoveAll(dir)
	var att, first, det []float64
	phases := map[string][]float64{}
	var order []string
	for i := 0; i < *runs; i++ {
		out := filepath.Join(dir, "trace")
		start := time.Now()
		s := attach(w.cmd.Process.Pid, out)
		att = append(att, ms(s.waitAttached().Sub(start)))
		if target == "loop" {
			first = append(first, ms(firstEvent(out, start)))
		}
		det = append(det, ms(s.stop()))
		for _, line := range strings.Split(s.stderr.String(), "\n") {
			// "lptrace: timing:    3.76 ms symbols read"
			f := strings.Fields(line)
			if len(f) < 5 || f[1] != "timing:" {
				continue
			}
			v, err := strconv.ParseFloat(f[2], 64)
			name := strings.Join(f[4:], " ")
			if i := strings.Index(name, " ("); i > 0 {
				name = name[:i] // "injected (queued as a pending call ...)"
			}
			if err != nil || strings.HasPrefix(name, "hook's code") {
				continue
			}
			if phases[name] == nil {
				order = append(order, name)
			}
			phases[name] = append(phases[name], v)
		}
		time.Sleep(100 * time.Millisecond) // the hook's timer thread leaves
	}
	l := Latency{Python: name(py), Target: target, Runs: *runs,
		AttachMedian: median(att), AttachP95: p95(att), DetachMedian: median(det), DetachP95: p95(det)}
	if len(first) > 0 {
		l.FirstEventMedian, l.FirstEventP95 = median(first), p95(first)
	}
	for _, name := range order {
		l.Phases = append(l.Phases, Phase{name, median(phases[name])})
	}
	l.GdbMedian, l.GdbFailed = gdbLatency(w.cmd.Process.Pid)
	// Stopped first: its busy loop would hold one of the machine's cores
	// while the new processes are attached (on 2 cores, that alone made
	// the first attach look 6-8 ms slower).
	w.stop()
	if target == "loop" {
		l.FreshAttachMedian, l.FreshFirstEventMedian, l.FreshRuns = freshLatency(py, dir)
	}
	return l
}

// freshLatency is the median attach and first-event latency of the first
// attach to a new call-loop process, half as many runs as the others.
func freshLatency(py, dir string) (attachMs, firstMs float64, n int) {
	var att, fst []float64
	n = max(*runs/2, 3)
	for i := 0; i < n; i++ {
		w := startWorkload(py, "loop")
		out := filepath.Join(dir, "fresh")
		os.Remove(out)
		start := time.Now()
		s := attach(w.cmd.Process.Pid, out)
		att = append(att, ms(s.waitAttached().Sub(start)))
		fst = append(fst, ms(firstEvent(out, start)))
		s.stop()
		w.stop()
	}
	return median(att), median(fst), n
}

// gdbLatency runs the same kind of injection through gdb (the way older
// tools do), a few times: 0 when gdb is not installed.
func gdbLatency(pid int) (float64, string) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		return 0, "no gdb"
	}
	var t []float64
	for i := 0; i < 5; i++ {
		start := time.Now()
		out, err := exec.Command(gdb, "-p", strconv.Itoa(pid), "-batch", "-nx",
			"-ex", "call (int)PyGILState_Ensure()",
			"-ex", `call (int)PyRun_SimpleString("x = 1")`,
			"-ex", "call (void)PyGILState_Release($1)").CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("Couldn't")) || bytes.Contains(out, []byte("History has not yet")) {
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "Couldn't") || strings.Contains(line, "rror") {
					return 0, line
				}
			}
			return 0, fmt.Sprintf("gdb: %v", err)
		}
		t = append(t, ms(time.Since(start)))
	}
	return median(t), ""
}

func overhead(py, mode string) Overhead {
	w := startWorkload(py, mode)
	defer w.stop()
	o := Overhead{Python: name(py), Workload: mode, Untraced: w.rate(3)}
	for i, extra := range [][]string{nil, {"-e", "no_such_function_lptrace"}} {
		s := attach(w.cmd.Process.Pid, os.DevNull, extra...)
		s.waitAttached()
		time.Sleep(300 * time.Millisecond) // threads hooked, caches warm
		r := w.rate(3)
		s.stop()
		if i == 0 {
			o.Traced = r
		} else {
			o.FilteredOut = r
		}
		time.Sleep(200 * time.Millisecond)
	}
	o.Detached = w.rate(3)
	return o
}

// modes measures one workload in every tracing mode and under cProfile.
func modes(py, workload string) Modes {
	m := Modes{Python: name(py), Workload: workload, Traced: map[string]float64{}}
	w := startWorkload(py, workload)
	m.Untraced = w.rate(3)
	for _, mode := range tracingModes {
		s := attach(w.cmd.Process.Pid, os.DevNull, mode.Args...)
		s.waitAttached()
		time.Sleep(300 * time.Millisecond) // threads hooked, caches warm
		m.Traced[mode.Name] = w.rate(3)
		s.stop()
		time.Sleep(200 * time.Millisecond)
	}
	w.stop()
	cp := startWorkloadWith(py, []string{"-m", "cProfile"}, workload)
	m.CProfile = cp.rate(3)
	cp.stop()
	if fl := startWorkloadEnv(py, []string{"LPTRACE_BENCH_FLOOR=1"}, nil, workload); fl != nil {
		m.Floor = fl.rate(3)
		fl.stop()
	}
	return m
}

func throughput(py string) Throughput {
	t := Throughput{Python: name(py)}
	// Idle: lptrace's CPU over 3 s while the target sleeps.
	idle := startWorkload(py, "idle")
	s := attach(idle.cmd.Process.Pid, os.DevNull)
	s.waitAttached()
	c0, wall0 := cpu(s.cmd.Process.Pid), time.Now()
	time.Sleep(3 * time.Second)
	t.LptraceCPUIdlePct = 100 * (cpu(s.cmd.Process.Pid) - c0) / time.Since(wall0).Seconds()
	s.stop()
	idle.stop()

	// Streaming: a call loop traced for 2 s into a file.
	w := startWorkload(py, "loop")
	rss0 := rss(w.cmd.Process.Pid, "VmRSS")
	dir, _ := os.MkdirTemp("", "lptrace-bench")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "trace")
	s = attach(w.cmd.Process.Pid, out)
	s.waitAttached()
	time.Sleep(200 * time.Millisecond)
	c0, wall0 = cpu(s.cmd.Process.Pid), time.Now()
	n0 := lines(out)
	time.Sleep(2 * time.Second)
	n1, c1, el := lines(out), cpu(s.cmd.Process.Pid), time.Since(wall0).Seconds()
	t.TargetExtraRSSMiB = (rss(w.cmd.Process.Pid, "VmRSS") - rss0) / 1024
	t.LptraceRSSMiB = rss(s.cmd.Process.Pid, "VmHWM") / 1024
	s.stop()
	t.EventsPerSec = float64(n1-n0) / el
	t.LptraceCPUStreamingPct = 100 * (c1 - c0) / el
	t.Dropped = dropped(s.stderr.String())
	w.stop()

	// Paced: 1 M calls a second, under what the traced target can do.
	t.PacedRate = 1e6
	p := startWorkload(py, "paced", strconv.Itoa(int(t.PacedRate)))
	paced := filepath.Join(dir, "paced")
	s = attach(p.cmd.Process.Pid, paced)
	s.waitAttached()
	time.Sleep(300 * time.Millisecond)
	n0, wall0 = lines(paced), time.Now()
	time.Sleep(2 * time.Second)
	n1, el = lines(paced), time.Since(wall0).Seconds()
	s.stop()
	t.PacedEventsPerSec = float64(n1-n0) / el
	t.PacedDropped = dropped(s.stderr.String())
	p.stop()

	// Paced, -T: 2.5 M calls a second, 5 M events.
	t.TimedRate = 2.5e6
	p = startWorkload(py, "paced", strconv.Itoa(int(t.TimedRate)))
	timed := filepath.Join(dir, "timed")
	s = attach(p.cmd.Process.Pid, timed, "-T")
	s.waitAttached()
	time.Sleep(300 * time.Millisecond)
	n0, c0, wall0 = lines(timed), cpu(s.cmd.Process.Pid), time.Now()
	time.Sleep(2 * time.Second)
	n1, c1, el = lines(timed), cpu(s.cmd.Process.Pid), time.Since(wall0).Seconds()
	s.stop()
	t.TimedEventsPerSec = float64(n1-n0) / el
	t.TimedCPUPct = 100 * (c1 - c0) / el
	t.TimedDropped = dropped(s.stderr.String())
	p.stop()
	return t
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func p95(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(len(s)-1, len(s)*95/100)]
}
