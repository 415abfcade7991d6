package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The -c table and -T's durations against a program whose work is known
// (programs/timed.py, run to its end in launch mode): exact call counts,
// a 50 ms sleep shown as 0.050 s within 10%, and a recursive function's
// total no more than the wall time it ran in (it was the sum over its
// nested calls: 1.28 s for 0.06 s of work). With the machine-code callback
// where it may serve, and with --no-native. The machine code keeps the -c
// table in the program: its counts stay exact with two threads calling as
// fast as they can (a stream of events that fast drops some).
func TestCountsAndDurations(t *testing.T) {
	prog := filepath.Join(programsDir, "timed.py")
	row := regexp.MustCompile(`(?m)^\s*[\d.]+\s+([\d.]+)\s+([\d.]+)\s+\d+\s+(\d+)\s+(\d*)\s+(\w+) \(`)
	duration := regexp.MustCompile(`(?m)^<- sleeper <([\d.]+)>`)
	stamp := regexp.MustCompile(`(?m)^(\d+\.\d{6}) sleeper \(`)
	const hot = 300000
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			for _, native := range [][]string{nil, {"--no-native"}} {
				out := filepath.Join(t.TempDir(), "table")
				args := append(append([]string{"-c", "-o", out}, native...), "--", py.Path, prog)
				if native == nil {
					args = append(args, strconv.Itoa(hot))
				}
				r := lptrace(t, "", args...)
				if r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				data, _ := os.ReadFile(out)
				type stat struct {
					own, total    float64
					calls, errors int
				}
				stats := map[string]stat{}
				for _, m := range row.FindAllStringSubmatch(string(data), -1) {
					own, _ := strconv.ParseFloat(m[1], 64)
					total, _ := strconv.ParseFloat(m[2], 64)
					calls, _ := strconv.Atoi(m[3])
					errors, _ := strconv.Atoi(m[4])
					stats[m[5]] = stat{own, total, calls, errors}
				}
				want := map[string]int{"sleeper": 6, "rec": 63, "tiny": 1000, "fail": 7, "main": 1}
				if native == nil {
					want["hot"], want["hot_loop"] = 2*hot, 2
				}
				for name, want := range want {
					if stats[name].calls != want {
						t.Errorf("%v: %s called %d times, want %d:\n%s%s", native, name, stats[name].calls, want, data, r.Stderr)
					}
				}
				if s := stats["fail"]; s.errors != 7 {
					t.Errorf("%v: fail raised %d times, want 7:\n%s", native, s.errors, data)
				}
				if s := stats["sleeper"]; s.total < 0.3*0.98 || s.total > 0.3*1.1 {
					t.Errorf("%v: sleeper's 6 sleeps of 50 ms took %.6f s:\n%s", native, s.total, data)
				}
				wall := stats["main"].total
				if s := stats["rec"]; s.total < 0.06*0.98 || s.total > wall || s.own > s.total+1e-6 {
					t.Errorf("%v: rec's total %.6f s (own %.6f) in a run of %.6f s:\n%s", native, s.total, s.own, wall, data)
				}

				out = filepath.Join(t.TempDir(), "trace")
				args = append(append([]string{"-T", "-o", out}, native...), "--", py.Path, prog)
				if r := lptrace(t, "", args...); r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				data, _ = os.ReadFile(out)
				ds := duration.FindAllStringSubmatch(string(data), -1)
				if len(ds) != 6 {
					t.Errorf("%v: %d durations of sleeper, want 6:\n%.2000s", native, len(ds), data)
				}
				for _, d := range ds {
					if v, _ := strconv.ParseFloat(d[1], 64); v < 0.050*0.98 || v > 0.050*1.1 {
						t.Errorf("%v: a 50 ms sleep shown as <%s>", native, d[1])
					}
				}
				if strings.Count(string(data), "<- tiny <") != 1000 {
					t.Errorf("%v: %d returns of tiny, want 1000", native, strings.Count(string(data), "<- tiny <"))
				}

				// -ttt: wall times, within the run, 50 ms apart (the machine
				// code's clock is the time-stamp counter once calibrated, a
				// few of the sleeps in).
				out = filepath.Join(t.TempDir(), "times")
				args = append(append([]string{"-ttt", "-o", out}, native...), "--", py.Path, prog)
				begin := time.Now()
				if r := lptrace(t, "", args...); r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				end := time.Now()
				data, _ = os.ReadFile(out)
				ts := stamp.FindAllStringSubmatch(string(data), -1)
				if len(ts) != 6 {
					t.Fatalf("%v: %d calls of sleeper, want 6:\n%.2000s", native, len(ts), data)
				}
				var prev float64
				for i, m := range ts {
					v, _ := strconv.ParseFloat(m[1], 64)
					if at := time.Unix(0, int64(v*1e9)); at.Before(begin) || at.After(end) {
						t.Errorf("%v: sleeper called at %s, in a run from %s to %s", native, at.Format(time.StampMicro), begin.Format(time.StampMicro), end.Format(time.StampMicro))
					}
					if d := v - prev; i > 0 && (d < 0.050*0.98 || d > 0.050*1.2) {
						t.Errorf("%v: sleeper's calls %.6f s apart, want 0.050", native, d)
					}
					prev = v
				}
			}
		})
	}
}

// A program that dies of SIGKILL right after its calls: the -c table it
// kept (in the ring file, lptrace's memory too) is read after its death,
// whole.
func TestCountsSurviveDeath(t *testing.T) {
	prog := filepath.Join(programsDir, "timed.py")
	const hot = 100000
	row := regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+\d*\s+hot \(`)
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			r := launchTraced(t, []string{"-c"}, py.Path, prog, strconv.Itoa(hot), "kill")
			if !r.status.Signaled() || r.status.Signal() != syscall.SIGKILL {
				t.Errorf("lptrace ended with %v, want killed by SIGKILL, as its program was: %s", howEnded(r.status), stderrEnd(r.stderr))
			}
			m := row.FindStringSubmatch(r.trace)
			if m == nil || m[1] != strconv.Itoa(2*hot) {
				t.Errorf("hot's calls: %v, want %d:\n%s\n%s", m, 2*hot, r.trace, stderrEnd(r.stderr))
			}
		})
	}
}

// --ret: the values the machine code records itself (None, bools, ints
// within 56 bits) and those the Python callback makes a record of read as
// with --no-native, as repr() writes them.
func TestReturnValues(t *testing.T) {
	prog := filepath.Join(programsDir, "returns.py")
	want := []string{"<- r_none = None", "<- r_int = 1", "<- r_int = -1099511627776", "<- r_int = 36028797018963967",
		"<- r_int = 36028797018963968", "<- r_bool = True", "<- r_bool = False", "<- r_float = 1.5", "<- r_str = 'a\\tb'",
		"<- r_big = 1180591620717411303424", "<- boom = ! "}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			var got [2]string
			for i, native := range [][]string{nil, {"--no-native"}} {
				out := filepath.Join(t.TempDir(), "trace")
				args := append(append([]string{"--ret", "-o", out}, native...), "--", py.Path, prog)
				if r := lptrace(t, "", args...); r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				data, _ := os.ReadFile(out)
				var lines []string
				for _, l := range strings.Split(string(data), "\n") {
					if strings.HasPrefix(l, "<- r_") || strings.HasPrefix(l, "<- boom") {
						lines = append(lines, l)
					}
				}
				// (the objects' addresses differ from run to run)
				got[i] = regexp.MustCompile(`0x[0-9a-f]+`).ReplaceAllString(strings.Join(lines, "\n"), "0x?")
				for _, w := range want {
					if !strings.Contains(got[i], w) {
						t.Errorf("%v: no line %q in:\n%s", native, w, got[i])
					}
				}
			}
			// (2.7 writes its longs with an L: the same either way)
			if got[0] != got[1] {
				t.Errorf("the machine code's values differ from the Python callback's:\n%s\n--- --no-native:\n%s", got[0], got[1])
			}
		})
	}
}

// TestArguments: -a writes each argument as the Python callback does,
// whether the machine code wrote it (3.12+: small builtins) or not, with
// text cut at -s.
func TestArguments(t *testing.T) {
	prog := filepath.Join(programsDir, "arguments.py")
	want := []string{"a_small(a=None, b=True, c=False, d=-1)", "a_small(a=-1099511627776, b=36028797018963967, c=36028797018963968, d=1180591620717411303424",
		"a_float(x=-0.0)", "a_float(x=1e+16)", "a_float(x=1000000000000000.0)", "a_float(x=1e-05)", "a_float(x=0.0001)",
		"a_float(x=nan)", "a_float(x=-inf)", "a_float(x=0.3333333333333333)", `a_text(s="it's")`, `a_text(s='tab\there')`,
		`a_text(s='back\\sla'...)`, "a_text(s='xxxxxxxx'...)", "a_mixed(a=1, b=None, c=2.5)", "a_mixed(a=[1, 2], b=(3,), c=None)",
		"a_cell(a=7)", "a_gen(a=1, b='z')", "a_mixed(a=(1, 'two', ...), b=(), c=(0, 1, 2, ...))",
		"a_mixed(a=((1,),), b=(<Thing at 0x?>,), c=(None,))", "method(self=<Thing at 0x?>, n=5)"}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			var got [2]string
			for i, native := range [][]string{nil, {"--no-native"}} {
				out := filepath.Join(t.TempDir(), "trace")
				args := append(append([]string{"-a", "-s", "8", "-o", out}, native...), "--", py.Path, prog)
				if r := lptrace(t, "", args...); r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				data, _ := os.ReadFile(out)
				var lines []string
				for _, l := range strings.Split(string(data), "\n") {
					if strings.HasPrefix(l, "a_") || strings.HasPrefix(l, "Thing.method") || strings.HasPrefix(l, "method(") {
						lines = append(lines, l)
					}
				}
				// (the objects' addresses differ from run to run)
				got[i] = regexp.MustCompile(`0x[0-9a-f]+`).ReplaceAllString(strings.Join(lines, "\n"), "0x?")
				for _, w := range want {
					if !strings.Contains(got[i], w) {
						t.Errorf("%v: no line %q in:\n%s", native, w, got[i])
					}
				}
			}
			if got[0] != got[1] {
				t.Errorf("the machine code's arguments differ from the Python callback's:\n%s\n--- --no-native:\n%s", got[0], got[1])
			}
		})
	}
}
