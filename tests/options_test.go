package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The calls target runs app_outer -> app_inner (sleeps 2 ms, returns x*2),
// app_fail (raises ValueError('bad'), caught), app_gen (a generator) every
// 50 ms. One attach with most options at once, on every Python.
func TestTraceOptions(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "calls")
			out := filepath.Join(t.TempDir(), "trace")
			r := lptrace(t, "", "attach", "--duration", "1.5s", "-o", out, "-T", "--ret", "-a", "--indent", "-tt",
				"-e", "app_*", "-e", "!app_gen", strconv.Itoa(tg.PID))
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			data, _ := os.ReadFile(out)
			trace := string(data)
			ts := `\d\d:\d\d:\d\d\.\d{6} `
			exc := `ValueError\('bad'\)`
			if !py.AtLeast(3, 12) {
				exc = `<exception>` // a profiler cannot see which
			}
			for _, pat := range []string{
				`(?m)^` + ts + `app_outer\(n=\d+\) \(.*target\.py:\d+\)$`,
				`(?m)^` + ts + `  app_inner\(x=\d+, label='lbl', rest=\(\), kw=\{'thing': <Thing at 0x[0-9a-f]+>\}\) \(.*target\.py:\d+\)$`,
				`(?m)^` + ts + `  <- app_inner = \d+ <0\.00[2-9]\d{3}>$`, // it sleeps 2 ms
				`(?m)^` + ts + `  <- app_fail = ! ` + exc + ` <\d\.\d{6}>$`,
				`(?m)^` + ts + `<- app_outer = \d+ <0\.\d{6}>$`,
			} {
				if !regexp.MustCompile(pat).MatchString(trace) {
					t.Errorf("no line matches %s", pat)
				}
			}
			for _, absent := range []string{"app_gen", "heartbeat_step", "lptrace"} {
				if strings.Contains(trace, absent) {
					t.Errorf("%s in the trace (filtered out)", absent)
				}
			}
			// Values are shown without running the program's code.
			e := lptrace(t, "", "exec", strconv.Itoa(tg.PID), "import __main__; __main__.STATE.get('repr_called', False)")
			if e.Stdout != "False\n" {
				t.Errorf("the program's __repr__ ran: %q %q", e.Stdout, e.Stderr)
			}
			if t.Failed() {
				t.Logf("trace:\n%s", head(trace, 40))
			}
			tg.checkUntouched(t)
		})
	}
}

// -c counts exactly: each app_outer makes one app_inner and one app_fail
// call (which raises); the target keeps its pace. --json events are valid
// JSON with the fields users filter on.
func TestTraceSummaryAndJSON(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "calls")
			r := lptrace(t, "", "-p", strconv.Itoa(tg.PID), "--duration", "1.5s", "-c", "-S", "calls", "-e", "app_*")
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			rows := summaryRows(r.Stderr)
			outer, inner, fail := rows["app_outer"], rows["app_inner"], rows["app_fail"]
			if outer[0] < 5 {
				t.Fatalf("app_outer called %d times in 1.5 s; table:\n%s", outer[0], r.Stderr)
			}
			// One call may be in flight at either end of the session.
			if d := inner[0] - outer[0]; d < -1 || d > 1 {
				t.Errorf("app_inner %d calls, app_outer %d", inner[0], outer[0])
			}
			if d := fail[0] - fail[1]; d < 0 || d > 1 {
				t.Errorf("app_fail %d calls, %d exceptions", fail[0], fail[1])
			}
			if strings.Contains(r.Stderr, "app_inner (") && !regexp.MustCompile(`(?m)^-+ -+`).MatchString(r.Stderr) {
				t.Errorf("no table:\n%s", r.Stderr)
			}

			// --no-stdlib: posixpath.join is gone, the program's functions stay.
			r = lptrace(t, "", "-p", strconv.Itoa(tg.PID), "--duration", scaled(time.Second).String(), "--no-stdlib")
			if !strings.Contains(r.Stderr, "app_outer (") || strings.Contains(r.Stderr, "join (") {
				t.Errorf("--no-stdlib:\n%s", head(r.Stderr, 20))
			}
			if r = lptrace(t, "", "-p", strconv.Itoa(tg.PID), "--duration", scaled(time.Second).String()); !strings.Contains(r.Stderr, "join (") {
				t.Errorf("posixpath.join not traced without --no-stdlib:\n%s", head(r.Stderr, 20))
			}

			out := filepath.Join(t.TempDir(), "json")
			r = lptrace(t, "", "-p", strconv.Itoa(tg.PID), "--duration", scaled(time.Second).String(), "-o", out, "--json", "-a", "--ret", "-T", "-e", "app_inner",
				"-e", "app_outer", "-e", "no_such_[fg]unction", "-e", "!app_fail")
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			// A pattern no call matched is said at the end; the others are not.
			if !strings.Contains(r.Stderr, "no call matched -e no_such_[fg]unction\n") || strings.Count(r.Stderr, "no call matched") != 1 {
				t.Errorf("unmatched patterns: %s", r.Stderr)
			}
			data, _ := os.ReadFile(out)
			var calls, returns int
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("not JSON: %q: %v", line, err)
				}
				if ev["pid"] != float64(tg.PID) || ev["module"] != "__main__" || ev["thread"] != "MainThread" || ev["ts"] == nil {
					t.Errorf("event %s", line)
				}
				switch {
				case ev["event"] == "call" && ev["function"] == "app_inner":
					calls++
					args, _ := ev["args"].(map[string]any)
					if args["label"] != "'lbl'" || ev["depth"] != float64(1) {
						t.Errorf("call %s", line)
					}
				case ev["event"] == "return" && ev["function"] == "app_inner":
					returns++
					if d, _ := ev["duration"].(float64); d < 0.002 || ev["return"] == nil {
						t.Errorf("return %s", line)
					}
				}
			}
			if calls < 5 || returns < 5 {
				t.Errorf("%d calls and %d returns of app_inner:\n%s", calls, returns, head(string(data), 20))
			}
			tg.checkUntouched(t)
		})
	}
}

// summaryRows reads the -c table: function name -> [calls, errors].
func summaryRows(table string) map[string][2]int {
	rows := map[string][2]int{}
	row := regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d*)\s*(\S+) \(`)
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		calls, _ := strconv.Atoi(m[1])
		errs, _ := strconv.Atoi(m[2])
		rows[m[3]] = [2]int{calls, errs}
	}
	return rows
}

// -f: a child forked while traced is traced too, its lines tagged with its
// pid (3.7+: the hook follows through os.register_at_fork).
func TestTraceFollowForks(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "calls")
			tr := startAttach(t, tg.PID, "-f", "-e", "app_*")
			time.Sleep(scaled(300 * time.Millisecond))
			syscall.Kill(tg.PID, syscall.SIGUSR2)
			time.Sleep(scaled(1500 * time.Millisecond))
			tr.Stop(t, syscall.SIGINT)
			trace := tr.Trace()
			child := regexp.MustCompile(`(?m)^\[pid (\d+)\] (?:\[tid \d+(?: [^\]]*)?\] )?app_child_work `).FindStringSubmatch(trace)
			if child == nil {
				t.Fatalf("no app_child_work from a child:\n%s\n%s", head(trace, 20), tr.Stderr())
			}
			if child[1] == strconv.Itoa(tg.PID) {
				t.Errorf("the child's calls carry the parent's pid")
			}
			if !regexp.MustCompile(`(?m)^\[pid ` + strconv.Itoa(tg.PID) + `\] (?:\[tid \d+(?: [^\]]*)?\] )?app_outer `).MatchString(trace) {
				t.Error("the parent's calls are missing")
			}
			if !strings.Contains(tr.Stderr(), "(forked by "+strconv.Itoa(tg.PID)+") attached") {
				t.Errorf("no message about the child: %s", tr.Stderr())
			}
			tg.checkUntouched(t)
		})
	}
}

// -p with several processes: each line says which.
func TestTraceSeveralProcesses(t *testing.T) {
	ps := pythons(t)
	py := ps[len(ps)-1]
	a, b := startTarget(t, py, "calls"), startTarget(t, py, "calls")
	r := lptrace(t, "", "-p", strconv.Itoa(a.PID)+" "+strconv.Itoa(b.PID), "--duration", "1s", "-e", "app_outer")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, pid := range []int{a.PID, b.PID} {
		if !regexp.MustCompile(`(?m)^\[pid ` + strconv.Itoa(pid) + `\] app_outer \(`).MatchString(r.Stderr) {
			t.Errorf("no line of process %d:\n%s", pid, head(r.Stderr, 20))
		}
		if !strings.Contains(r.Stderr, "process "+strconv.Itoa(pid)+" detached") {
			t.Errorf("process %d not detached: %s", pid, r.Stderr)
		}
	}
	// -c: a table per process, each with its own calls, none longer than
	// the session.
	r = lptrace(t, "", "-c", "-p", strconv.Itoa(a.PID), "-p", strconv.Itoa(b.PID), "--duration", "1s", "-e", "app_outer")
	first, second := min(a.PID, b.PID), max(a.PID, b.PID)
	before, after, ok := strings.Cut(r.Stderr, "\nprocess "+strconv.Itoa(second)+":\n")
	if r.Code != 0 || !ok || !strings.Contains(before, "process "+strconv.Itoa(first)+":\n") {
		t.Fatalf("-c of two processes: status %d:\n%s", r.Code, r.Stderr)
	}
	for _, table := range []string{before, after} {
		row := regexp.MustCompile(`(?m)^\s*[\d.]+\s+([\d.]+)\s+([\d.]+)\s+\d+\s+(\d+)\s+\S*\s*app_outer \(`).FindStringSubmatch(table)
		if row == nil {
			t.Errorf("no row of app_outer:\n%s", table)
			continue
		}
		if total, _ := strconv.ParseFloat(row[2], 64); total > 1.5 {
			t.Errorf("app_outer's total %s s in a 1 s session:\n%s", row[2], table)
		}
	}
}

const launchScript = `import sys
def greet(name):
    return 'hello ' + name
def main():
    print(greet('world'))
    sys.exit(3)
main()
`

// lptrace -- python script: traced from the script's first call (nothing of
// the interpreter's start-up), the program's output and exit status kept.
// threadScript imports threading only once it runs: in launch mode the
// hook is installed before that (before 3.12 the hook sets threading's
// profile hook once the module appears; 2.7's start-up does not import it).
const threadScript = `import sys
def work(n):
    return n + 1
def loop():
    for i in range(5):
        work(i)
import threading
ts = [threading.Thread(target=loop) for i in range(3)]
for t in ts: t.start()
for t in ts: t.join()
`

// searchable tells whether every directory above path lets others in.
func searchable(path string) bool {
	for d := filepath.Dir(path); d != "/"; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
	}
	return true
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// 3.12+: a function a filtered session disabled (sys.monitoring's DISABLE,
// which outlives the tool id) is traced again by the next session, however
// quickly it follows.
func TestFilterDoesNotOutliveSession(t *testing.T) {
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 12) {
			continue
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "calls")
			pid := strconv.Itoa(tg.PID)
			for i := 0; i < 3; i++ {
				if r := lptrace(t, "", "-p", pid, "--duration", "500ms", "--no-stdlib"); strings.Contains(r.Stderr, "join (") {
					t.Fatalf("--no-stdlib traced posixpath.join:\n%s", head(r.Stderr, 20))
				}
				if r := lptrace(t, "", "-p", pid, "--duration", "500ms"); !strings.Contains(r.Stderr, "join (") {
					t.Fatalf("round %d: posixpath.join not traced after a --no-stdlib session:\n%s", i, head(r.Stderr, 20))
				}
			}
		})
	}
}

// A malformed command line gets one line on stderr (and the usual hint),
// status 2, never a Go panic: an option missing its value, last, crashed
// the argument reordering (lptrace -p); a negative --duration traced
// forever; plain seconds were refused.
func TestMalformedCommandLines(t *testing.T) {
	for _, line := range []string{"-p", "-e", "-p 1 -S", "-p 1 --color", "-o", "attach --duration",
		"-p 1 --duration -1s", "-p 1 --duration 0", "-p 1 --timeout abc", "exec 1 --timeout -5", "-p 1 -e [", "-p 1 -e [a-",
		"-p 1 -e ok,[!x", "-p 1 -e signal=none", "-p 1 -x", "-p 1 --jsn", "-qqq -p 1", "-T 1"} {
		r := lptrace(t, "", strings.Fields(line)...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 2 || strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine") ||
			len(lines) > 2 || !strings.HasPrefix(lines[0], "lptrace: ") {
			t.Errorf("lptrace %s: status %d, stderr %q", line, r.Code, r.Stderr)
		}
	}
	// strace's options lptrace lacks say what to do instead.
	for line, want := range map[string]string{"-p 1 -x": "values show as Python's repr()", "-p 1 --jsn": "did you mean --json?",
		"-T 1": "give -p 1"} {
		if r := lptrace(t, "", strings.Fields(line)...); !strings.Contains(r.Stderr, want) {
			t.Errorf("lptrace %s: %q", line, r.Stderr)
		}
	}
	// Plain seconds are a duration.
	py := newest(t)
	tg := startTarget(t, py, "sleep")
	if r := lptrace(t, "", "-p", strconv.Itoa(tg.PID), "--duration", "0.3", "--timeout", "10", "-o", os.DevNull); r.Code != 0 {
		t.Errorf("--duration 0.3 --timeout 10: status %d: %s", r.Code, r.Stderr)
	}
	tg.checkUntouched(t)
}

// A trace that cannot be written (-o /dev/full) is an error, said on
// stderr with status 1 (it ended with status 0 and no word); a reader
// that goes away (| head) stays a normal end.
func TestOutputWriteError(t *testing.T) {
	tg := startTarget(t, newest(t), "calls")
	pid := strconv.Itoa(tg.PID)
	for _, mode := range [][]string{nil, {"-c"}} {
		r := lptrace(t, "", append([]string{"-p", pid, "--duration", "500ms", "-o", "/dev/full"}, mode...)...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "cannot write the trace to /dev/full: no space left on device") {
			t.Errorf("%v -o /dev/full: status %d, %q", mode, r.Code, r.Stderr)
		}
	}
	hookGone(t, tg.PID, 2*time.Second)
	tg.checkUntouched(t)
}

// Help as strace users read it: no "(default: false)" after each switch,
// -tt and -ttt with one dash; `lptrace` alone is a usage error, `lptrace
// help` and --help are not.
func TestHelp(t *testing.T) {
	for _, line := range [][]string{{"--help"}, {"attach", "--help"}, {"help"}} {
		r := lptrace(t, "", line...)
		text := r.Stdout + r.Stderr
		if r.Code != 0 || strings.Contains(text, "(default: false)") || !strings.Contains(text, "\n   -tt ") ||
			strings.Contains(text, "--tt") || !strings.Contains(text, "-T ") {
			t.Errorf("lptrace %s: status %d:\n%s", strings.Join(line, " "), r.Code, text)
		}
	}
	if r := lptrace(t, ""); r.Code != 2 || !strings.Contains(r.Stderr, "USAGE") {
		t.Errorf("lptrace alone: status %d, stderr %q", r.Code, r.Stderr)
	}
}

// strace's switches: -z (only calls that returned, with their value), -Z
// (only those that raised), -q (no attached/started/detached lines), -qq
// (no exit line either), -A (append to -o).
func TestStraceSwitches(t *testing.T) {
	prog := filepath.Join(programsDir, "outcomes.py")
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			r := lptrace(t, "", "-z", "-a", "-e", "ok", "-e", "bad", "--", py.Path, prog)
			for i := 0; i < 3; i++ {
				if !strings.Contains(r.Stderr, fmt.Sprintf("ok(x=%d) = %d (", i, 2*i)) {
					t.Errorf("-z: no line of ok(x=%d):\n%s", i, r.Stderr)
				}
			}
			if strings.Contains(r.Stderr, "bad") || !strings.Contains(r.Stderr, "started (") || !strings.Contains(r.Stderr, "+++ exited with 0 +++") {
				t.Errorf("-z:\n%s", r.Stderr)
			}
			r = lptrace(t, "", "-Z", "-q", "-e", "ok", "-e", "bad", "--", py.Path, prog)
			if strings.Count(r.Stderr, "bad(") != 3 || strings.Contains(r.Stderr, "ok") || strings.Contains(r.Stderr, "lptrace:") ||
				!strings.Contains(r.Stderr, "+++ exited with 0 +++") {
				t.Errorf("-Z -q:\n%s", r.Stderr)
			}
			r = lptrace(t, "", "-qq", "-e", "ok", "--", py.Path, prog)
			if strings.TrimSpace(r.Stderr) != strings.TrimSpace(strings.Repeat("ok ("+prog+":5)\n", 3)) {
				t.Errorf("-qq:\n%s", r.Stderr)
			}
			out := filepath.Join(t.TempDir(), "trace")
			for _, opts := range [][]string{{"-e", "ok"}, {"-A", "-e", "bad"}} {
				if r = lptrace(t, "", append(append([]string{"-qq", "-o", out}, opts...), "--", py.Path, prog)...); r.Code != 0 || r.Stderr != "" {
					t.Errorf("-qq -o %v: status %d: %s", opts, r.Code, r.Stderr)
				}
			}
			data, _ := os.ReadFile(out)
			if strings.Count(string(data), "ok (") != 3 || strings.Count(string(data), "bad (") != 3 {
				t.Errorf("-o then -A -o:\n%s", data)
			}
		})
	}
}

// --json keeps its stream JSON only: without -o it goes to stdout, and
// lptrace's messages to stderr; --json -c writes the table as JSON Lines
// (a "count" line per function, then the "total").
func TestJSONStream(t *testing.T) {
	prog := filepath.Join(programsDir, "outcomes.py")
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range [][]string{{"--json", "-a", "--ret"}, {"--json", "-c"}} {
				r := lptrace(t, "", append(append(mode, "-e", "ok", "-e", "bad", "--"), py.Path, prog)...)
				if r.Code != 0 || !strings.Contains(r.Stderr, "lptrace: process ") {
					t.Fatalf("%v: status %d: %s", mode, r.Code, r.Stderr)
				}
				counts := map[string]float64{}
				for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
					var ev map[string]any
					if err := json.Unmarshal([]byte(line), &ev); err != nil {
						t.Fatalf("%v: not JSON: %q (stdout %q)", mode, line, r.Stdout)
					}
					switch ev["event"] {
					case "call":
						counts[ev["function"].(string)]++
					case "count":
						counts[ev["function"].(string)] = ev["calls"].(float64)
						if ev["function"] == "bad" && ev["errors"] != float64(3) {
							t.Errorf("%v: %s", mode, line)
						}
					case "total":
						counts["total"] = ev["calls"].(float64)
					}
				}
				if counts["ok"] != 3 || counts["bad"] != 3 || (mode[1] == "-c" && counts["total"] != 6) {
					t.Errorf("%v: %v in:\n%s", mode, counts, r.Stdout)
				}
				if strings.Contains(r.Stderr, "{") {
					t.Errorf("%v: JSON on stderr: %s", mode, r.Stderr)
				}
			}
		})
	}
}

// One pattern matches the same functions on every version: before 3.11
// (no co_qualname) the hook names a function as 3.11+ does, Class.method,
// for methods, classmethods, staticmethods, properties and inherited
// methods, without running the program's code (a metaclass that raises
// on any attribute lookup).
func TestQualifiedNames(t *testing.T) {
	prog := filepath.Join(programsDir, "classes.py")
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			// (The metaclass's class is qualified too, filtered out or not:
			// its AssertionError would end the program.)
			r := lptrace(t, "", "-q", "-e", "Job.*", "-e", "helper", "--", py.Path, prog)
			if r.Code != 0 {
				t.Fatalf("status %d: %s", r.Code, r.Stderr)
			}
			for fn, n := range map[string]int{"Job.make": 3, "Job.run": 6, "Job.check": 3, "Job.size": 3, "helper": 3} {
				if got := len(regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(fn)+` \(`).FindAllString(r.Stderr, -1)); got != n {
					t.Errorf("%d lines of %s, want %d:\n%s", got, fn, n, r.Stderr)
				}
			}
			if strings.Contains(r.Stderr, "nested") || strings.Contains(r.Stderr, "no call matched") {
				t.Errorf("trace:\n%s", r.Stderr)
			}
			// -k: each call's callers, innermost first (helper's nested
			// function has its 3.11+ name there, helper.<locals>.nested).
			r = lptrace(t, "", "-q", "-k", "-e", "*nested", "--", py.Path, prog)
			want := " > helper (" + prog + ":41)\n > <module> (" + prog + ":51)\n"
			if r.Code != 0 || strings.Count(r.Stderr, "nested ("+prog+":39)\n"+want) != 3 {
				t.Errorf("-k: status %d:\n%s", r.Code, r.Stderr)
			}
		})
	}
}

// -ff -o FILE: each process's trace in FILE.PID (the parent's and each
// forked worker's), without [pid N] prefixes; every call of the workers
// is in one of them.
func TestFollowForksApart(t *testing.T) {
	prog := filepath.Join(programsDir, "mp_pool.py")
	for _, py := range pythons(t) {
		if !py.AtLeast(3, 7) {
			continue // -f follows forks through os.register_at_fork
		}
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := lptrace(t, "", "-ff", "-q", "-e", "square_it", "-e", "main", "-o", filepath.Join(dir, "out"), "--", py.Path, prog, "fork")
			m := regexp.MustCompile(`PARENT (\d+)`).FindStringSubmatch(r.Stdout)
			if r.Code != 0 || m == nil {
				t.Fatalf("status %d: %s%s", r.Code, r.Stdout, r.Stderr)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "out.*"))
			squares := 0
			for _, f := range files {
				data, _ := os.ReadFile(f)
				text := string(data)
				if strings.Contains(text, "[pid ") {
					t.Errorf("%s has [pid N] prefixes:\n%s", f, head(text, 5))
				}
				if strings.HasSuffix(f, "."+m[1]) {
					if !strings.HasPrefix(text, "main (") || strings.Contains(text, "square_it") || !strings.HasSuffix(text, "+++ exited with 0 +++\n") {
						t.Errorf("the parent's file:\n%s\n...\n%s", head(text, 5), tail(text, 3))
					}
					continue
				}
				squares += strings.Count(text, "square_it (")
				if !regexp.MustCompile(`(?m)^\+\+\+ (exited|killed by SIG)`).MatchString(text) {
					t.Errorf("a worker's file has no exit line:\n%s", tail(text, 5))
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
				t.Errorf("-ff -o FILE made FILE itself")
			}
			if len(files) < 2 || (squares != 20 && !strings.Contains(r.Stderr, "dropped")) {
				t.Errorf("%d files, %d calls of square_it in the workers' (want 20); stderr %s", len(files), squares, r.Stderr)
			}
		})
	}
}
