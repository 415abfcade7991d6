package tests

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Calls, returns and their times are recorded by the hook's machine-code
// callback (hook/native.py; x86-64): on 3.12+ builtin functions, which the
// timer thread puts in place of the Python callbacks after its first
// flush; before, a C profile function that the hook's Python profile
// function holds (as lptrace_native). It is in place while traced, the
// trace is complete, and nothing of it (the functions, its mappings)
// outlives the session; --no-native keeps it out, and so do arguments (-a)
// on 2.7 (3.6+: their small builtins are recorded by it too).
func TestAttachNative(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the machine-code callback is x86-64's (elsewhere the hook uses its Python callback: TestAttachAllThreads)")
	}
	type mode struct {
		opts   []string
		native bool
		shows  string // "calls": lines of calls to check; "table": -c's; "": lines not parsed (-a's have arguments)
	}
	modes := []mode{{nil, true, "calls"}, {[]string{"--no-native"}, false, "calls"}, {[]string{"-T"}, true, "calls"},
		{[]string{"--ret"}, true, "calls"}, {[]string{"-a"}, true, ""}, {[]string{"-c"}, true, "table"}}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			if py.FreeThreaded() {
				t.Skip("a free-threaded build keeps the Python callback: its calls are not serialized (TestFreeThreaded)")
			}
			t.Parallel()
			// The hook builds the callback with ctypes: musl builds without
			// libffi have none, and keep the Python callback.
			hasCtypes := hasModules(py, "ctypes")
			tg := startTarget(t, py, "owners")
			pid := strconv.Itoa(tg.PID)
			alive := "import gc; any(getattr(o, '__name__', '') == 'lptrace_native' or 'lptrace_native' in (getattr(o, '__dict__', None) or {}) for o in gc.get_objects() if type(o).__name__ in ('builtin_function_or_method', 'function'))"
			for _, m := range modes {
				opts, native := m.opts, m.native
				if m.shows == "" && strings.HasPrefix(py.Name, "2.") || !hasCtypes {
					native = false
				}
				tr := startAttach(t, tg.PID, opts...)
				// Before 3.12 lptrace hooks each busy thread when it catches it.
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if m.shows == "table" {
						time.Sleep(time.Second) // (nothing to see before the end)
						break
					}
					out := tr.Trace()
					if c := calls(out); m.shows == "calls" && c["owned_by_w0"] != nil && c["owned_by_w3"] != nil {
						break
					}
					if m.shows == "" && strings.Contains(out, "] owned_by_w0(") && strings.Contains(out, "] owned_by_w3(") {
						break
					}
				}
				want := "True\n"
				if !native {
					want = "False\n"
				}
				// On 3.12+ the timer thread builds it after its first flush:
				// under this target's GIL contention, a moment later.
				var r Result
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
					if r = lptrace(t, "", "exec", pid, alive); r.Stdout == want || time.Now().After(deadline) {
						break
					}
				}
				if r.Stdout != want {
					t.Errorf("%v: machine-code callback alive while traced: %q, want %q (%s)", opts, r.Stdout, want, r.Stderr)
				}
				// The ring file, and the tables of the machine-code callback.
				// (-c alone: and the threads' stacks of the table it keeps)
				if n := nativeMappings(tg.PID); n != map[bool]int{true: 2, false: 1}[native]+map[bool]int{true: 1}[m.shows == "table" && native] {
					t.Errorf("%v: %d mappings of its ring and tables while traced", opts, n)
				}
				time.Sleep(500 * time.Millisecond)
				tr.Stop(t, syscall.SIGINT)
				c := calls(tr.Trace())
				for _, fn := range []string{"shared_call", "owned_by_w0", "owned_by_w3", "heartbeat_step"} {
					switch {
					case m.shows == "table":
						// Calls counted, time given. (Before 3.12 a busy
						// thread is hooked when lptrace catches it, which
						// the other modes wait for: one may be missing from
						// a table of a second or two, any owner's row does.)
						if strings.HasPrefix(fn, "owned_by_w") {
							fn = `owned_by_w\d`
						}
						if !regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+[1-9]\d*\s+.*\b` + fn + ` \(`).MatchString(tr.Trace()) {
							t.Errorf("-c: no row of %s in the table:\n%s", fn, tr.Trace())
						}
					case m.shows == "calls" && c[fn] == nil, m.shows == "" && !strings.Contains(tr.Trace(), "] "+fn+"("):
						t.Errorf("%v: %s missing from the trace (stderr %q)", opts, fn, tr.Stderr())
					}
				}
				if m.shows == "calls" && !strings.Contains(tr.Stderr(), "dropped") {
					checkOwnerRounds(t, opts, tr.Trace(), tr.Stderr())
				}
				if opts != nil && opts[0] == "--ret" && !regexp.MustCompile(`(?m)^\[tid \d+ w3\] <- owned_by_w3 = 3$`).MatchString(tr.Trace()) {
					t.Errorf("--ret: no return of owned_by_w3 with its value in the trace:\n%.2000s", tr.Trace())
				}
				if opts != nil && opts[0] == "-T" && !regexp.MustCompile(`(?m)^\[tid \d+ w0\] <- owned_by_w0 <\d+\.\d{6}>$`).MatchString(tr.Trace()) {
					t.Errorf("-T: no timed return of owned_by_w0 in the trace:\n%.2000s", tr.Trace())
				}
				hookGone(t, tg.PID, 2*time.Second)
				if r := lptrace(t, "", "exec", pid, alive); r.Stdout != "False\n" {
					t.Errorf("%v: machine-code callback alive after detach: %q %s", opts, r.Stdout, r.Stderr)
				}
				if n := nativeMappings(tg.PID); n != 0 {
					t.Errorf("%v: %d mappings of its ring left after detach", opts, n)
				}
			}
			tg.waitTicks(t, 3, 5*time.Second)
		})
	}
}

// With a filter that rejects every call, the machine-code callback comes
// all the same (no first event ever triggers it): before 3.12 the Python
// profile function would otherwise see every call, 15-22x slower.
func TestAttachNativeFilteredOut(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the machine-code callback is x86-64's")
	}
	for _, py := range pythons(t) {
		t.Run(py.Name, func(t *testing.T) {
			if py.FreeThreaded() {
				t.Skip("a free-threaded build keeps the Python callback: its calls are not serialized (TestFreeThreaded)")
			}
			t.Parallel()
			if !hasModules(py, "ctypes") {
				t.Skip("no ctypes: the hook keeps the Python callback (TestAttachNative)")
			}
			tg := startTarget(t, py, "owners")
			tr := startAttach(t, tg.PID, "-e", "no_such_function_anywhere")
			alive := "import gc; any(getattr(o, '__name__', '') == 'lptrace_native' or 'lptrace_native' in (getattr(o, '__dict__', None) or {}) for o in gc.get_objects() if type(o).__name__ in ('builtin_function_or_method', 'function'))"
			var r Result
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if r = lptrace(t, "", "exec", strconv.Itoa(tg.PID), alive); r.Stdout == "True\n" || time.Now().After(deadline) {
					break
				}
			}
			if r.Stdout != "True\n" {
				t.Errorf("no machine-code callback with every call filtered out: %q (%s)", r.Stdout, r.Stderr)
			}
			tr.Stop(t, syscall.SIGINT)
			if c := calls(tr.Trace()); len(c) != 0 {
				t.Errorf("calls shown though every one is filtered out: %v", c)
			}
			hookGone(t, tg.PID, 2*time.Second)
			if n := nativeMappings(tg.PID); n != 0 {
				t.Errorf("%d mappings of its ring left after detach", n)
			}
		})
	}
}
