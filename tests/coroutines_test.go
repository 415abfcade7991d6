package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Coroutines and generators (programs/coroutines.py, two rounds): each
// call shows once, its resumptions and suspensions as such; -T times a
// suspension's turn and the whole call at its return (first start to
// final return: a coroutine that awaits a 50 ms sleep takes 50 ms, though
// it ran for microseconds); -c counts the calls, not the resumptions, and
// their running time. With the machine-code callback and with
// --no-native, on every version (2.7: generators only).
func TestCoroutines(t *testing.T) {
	prog := filepath.Join(programsDir, "coroutines.py")
	whole := regexp.MustCompile(`(?m)^<- process <([\d.]+)>$`)
	turn := regexp.MustCompile(`(?m)^<- (?:process|step|countdown) suspended <([\d.]+)>$`)
	row := regexp.MustCompile(`(?m)^\s*[\d.]+\s+([\d.]+)\s+([\d.]+)\s+\d+\s+(\d+)\s+(\d*)\s+(\w+) \(`)
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			async := py.AtLeast(3, 6)
			for _, native := range [][]string{nil, {"--no-native"}} {
				out := filepath.Join(t.TempDir(), "trace")
				args := append(append([]string{"-T", "-e", "process", "-e", "step", "-e", "countdown", "-o", out}, native...),
					"--", py.Path, prog, "2")
				r := lptrace(t, "", args...)
				if r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				data, _ := os.ReadFile(out)
				text := string(data)
				count := func(s string) int { return strings.Count(text, s) }
				want := map[string]int{
					"countdown (": 2, "countdown resumed (": 6, "<- countdown suspended <": 6, "<- countdown <": 2,
				}
				if async {
					want["process ("], want["process resumed ("] = 6, 12
					want["<- process suspended <"], want["<- process <"] = 12, 6
					want["step ("], want["step resumed ("], want["<- step <"] = 6, 6, 6
				}
				for s, n := range want {
					if got := count(s); got != n {
						t.Errorf("%v: %d lines %q, want %d:\n%.3000s", native, got, s, n, text)
					}
				}
				if strings.Contains(text, "= !") {
					t.Errorf("%v: a suspension shown as an exception:\n%.3000s", native, text)
				}
				for _, m := range whole.FindAllStringSubmatch(text, -1) {
					if v, _ := strconv.ParseFloat(m[1], 64); v < 0.049 || v > 2 {
						t.Errorf("%v: a call that awaited a 50 ms sleep took <%s>", native, m[1])
					}
				}
				for _, m := range turn.FindAllStringSubmatch(text, -1) {
					if v, _ := strconv.ParseFloat(m[1], 64); v > 0.045 {
						t.Errorf("%v: a turn that never sleeps took <%s> (the whole call's time?)", native, m[1])
					}
				}

				// -c: calls, not resumptions; running time, not waiting.
				out = filepath.Join(t.TempDir(), "table")
				args = append(append([]string{"-c", "-o", out}, native...), "--", py.Path, prog, "2")
				r = lptrace(t, "", args...)
				if r.Code != 0 {
					t.Fatalf("lptrace %v: exit %d: %s", args, r.Code, r.Stderr)
				}
				data, _ = os.ReadFile(out)
				calls := map[string]int{}
				for _, m := range row.FindAllStringSubmatch(string(data), -1) {
					calls[m[5]], _ = strconv.Atoi(m[3])
					if mine := map[string]bool{"process": true, "step": true, "countdown": true}; mine[m[5]] && m[4] != "" {
						t.Errorf("%v: %s raised %s times:\n%s", native, m[5], m[4], data)
					}
					if total, _ := strconv.ParseFloat(m[2], 64); m[5] == "process" && total > 0.1 {
						t.Errorf("%v: process ran %.6f s in all (its waits counted?):\n%s", native, total, data)
					}
				}
				wantCalls := map[string]int{"countdown": 2}
				if async {
					wantCalls["process"], wantCalls["step"] = 6, 6
				}
				for name, n := range wantCalls {
					if calls[name] != n {
						t.Errorf("%v: -c counts %d calls of %s, want %d:\n%s%s", native, calls[name], name, n, data, r.Stderr)
					}
				}
			}

			// JSON names the events (in a file: on stdout, the program's
			// own output would share the pipe).
			jsonOut := filepath.Join(t.TempDir(), "events")
			r := lptrace(t, "", "--json", "-T", "-e", "countdown", "-o", jsonOut, "--", py.Path, prog)
			data, _ := os.ReadFile(jsonOut)
			seen := map[string]int{}
			for _, line := range strings.Split(string(data), "\n") {
				var e struct {
					Event    string   `json:"event"`
					Duration *float64 `json:"duration"`
				}
				if json.Unmarshal([]byte(line), &e) == nil && e.Event != "" {
					seen[e.Event]++
				}
			}
			if seen["call"] != 1 || seen["resume"] != 3 || seen["suspend"] != 3 || seen["return"] != 1 {
				t.Errorf("--json events %v, want a call, 3 resumes, 3 suspends, a return:\n%s%s", seen, data, r.Stderr)
			}
		})
	}
}
