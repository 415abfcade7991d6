package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Repeated attach/trace/detach cycles against a busy multi-threaded
// program (CPU, file and socket I/O, sleeps, lock waits, subprocesses): the
// program sees no error of its own, keeps its pace, and leaks nothing: the
// same file descriptors and threads after as before, its memory about the
// same, nothing left in /tmp. 20 cycles on three interpreters by default;
// LPTRACE_TORTURE=1: 200 on every one.
func TestLoadCycles(t *testing.T) {
	cycles, ps := 20, pythons(t)
	if os.Getenv("LPTRACE_TORTURE") != "" {
		cycles = 200
	} else {
		ps = []Python{ps[0], newest(t)}
		for _, p := range pythons(t) {
			if p.Name == "3.11" {
				ps = append(ps, p)
			}
		}
	}
	options := [][]string{nil, {"-T", "--ret", "-a"}, {"-e", "fib"}, {"-c"}, {"--json", "--indent"}}
	for _, py := range ps {
		t.Run(py.Name, func(t *testing.T) {
			t.Parallel()
			tg := startTarget(t, py, "load") // READY once every worker has begun
			pid := strconv.Itoa(tg.PID)
			// First sessions import what the hook needs, once for good
			// (3.12+: ctypes for the machine-code callback, whose libffi
			// keeps a descriptor of its own library open).
			for _, first := range [][]string{{"-T", "--ret", "-a", "-e", "fib", "--json"}, nil} {
				if r := lptrace(t, "", append([]string{"-p", pid, "--duration", "150ms", "-o", os.DevNull}, first...)...); r.Code != 0 {
					t.Fatalf("exit %d: %s", r.Code, r.Stderr)
				}
			}
			fds0, threads0, rss0 := fdCount(tg.PID), threadCount(tg.PID), rssKiB(tg.PID)
			objects0 := pyObjects(t, pid)
			for i := 0; i < cycles; i++ {
				args := append([]string{"-p", pid, "--duration", "150ms", "-o", os.DevNull}, options[i%len(options)]...)
				if r := lptrace(t, "", args...); r.Code != 0 {
					t.Fatalf("cycle %d: exit %d: %s", i, r.Code, r.Stderr)
				}
				if !tg.Alive() {
					t.Fatalf("the target died at cycle %d", i)
				}
			}
			hookGone(t, tg.PID, 2*time.Second)
			// The hook's last timer thread ends (the count is checked below).
			eventually(2*time.Second, func() bool { return threadCount(tg.PID) == threads0 })
			if n := fdCount(tg.PID); n != fds0 {
				t.Errorf("file descriptors: %d before, %d after %d cycles", fds0, n, cycles)
			}
			if n := threadCount(tg.PID); n != threads0 {
				t.Errorf("threads: %d before, %d after", threads0, n)
			}
			// One small at-fork callback per session stays (os.register_at_fork
			// has no unregister; it holds nothing else): a few objects each.
			// Measured: about 3 per cycle on 3.12, none on 2.7 and 3.11 (the
			// program's own objects come and go: +-20 per cycle over 10
			// cycles). A whole session kept alive (the hook's code, closures,
			// tables) is over 500; one kept by every other attach (a chain
			// through threading's profile hook, fixed) showed as 90.
			n := pyObjects(t, pid)
			t.Logf("%d cycles: Python objects %d -> %d, RSS %d -> %d KiB", cycles, objects0, n, rss0, rssKiB(tg.PID))
			if n > objects0+30*cycles {
				t.Errorf("Python objects: %d before, %d after %d cycles", objects0, n, cycles)
			}
			if n := nativeMappings(tg.PID); n != 0 {
				t.Errorf("%d mappings of the machine-code callback's ring left", n)
			}
			// The allocator and the C library's cache of thread stacks keep
			// some pages (measured over 20 cycles: +3 to +10 MB, the most
			// on 3.15): only a leak of whole payloads would pass this.
			if rss := rssKiB(tg.PID); rss > rss0+16384+64*cycles {
				t.Errorf("memory: %d KiB before, %d KiB after %d cycles", rss0, rss, cycles)
			}
			r := lptrace(t, "", "exec", pid, "import __main__; __main__.STATE['errors']")
			if r.Stdout != "0\n" {
				t.Errorf("the program saw errors of its own: %q %q", r.Stdout, r.Stderr)
			}
			tg.checkUntouched(t)
		})
	}
}

// fdCount is the fewest descriptors seen in 20 looks 10 ms apart: the
// program's workers open files and pipes for a moment, a leak stays.
// pyObjects counts the objects the target's garbage collector tracks.
func pyObjects(t *testing.T, pid string) int {
	r := lptrace(t, "", "exec", pid, "import gc; gc.collect(); len(gc.get_objects())")
	n, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("object count: %q %q", r.Stdout, r.Stderr)
	}
	return n
}

func fdCount(pid int) int {
	least := -1
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	for i := 0; i < 20; i++ {
		ents, _ := os.ReadDir(dir)
		n := 0
		for _, e := range ents {
			// The load target's file worker opens its own file every 5 ms
			// (on a free-threaded build it was open in all 20 looks).
			if l, _ := os.Readlink(dir + e.Name()); !strings.Contains(l, "/load-") {
				n++
			}
		}
		if least < 0 || n < least {
			least = n
		}
		time.Sleep(10 * time.Millisecond)
	}
	return least
}

func rssKiB(pid int) int {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// nativeMappings counts the mappings of the machine-code callback's tables
// (hook/native.py: 0x104000 bytes, read-write between two inaccessible
// pages, so never merged with a neighbour) and of lptrace's ring file
// (transport.Ring): none may outlive its session. The guard pages are part of the
// fingerprint: a thread's glibc malloc arena (64 MiB reserved, the used part
// read-write, the rest inaccessible after it) has that size at times, e.g.
// one that compiled the modules the hook imports when the hook's install ran
// in that thread.
func nativeMappings(pid int) int {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	type mapping struct {
		start, end uint64
		perms      string
		anon       bool // no path, not even [heap], which can have that size
	}
	var maps []mapping
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "/lptrace-") && strings.Contains(l, "/ring") {
			n++ // the ring file (deleted)
			continue
		}
		var m mapping
		if _, err := fmt.Sscanf(l, "%x-%x %s", &m.start, &m.end, &m.perms); err == nil {
			m.anon = len(strings.Fields(l)) == 5
			maps = append(maps, m)
		}
	}
	guard := func(m mapping) bool { return m.anon && m.perms == "---p" && m.end-m.start == 0x1000 }
	for i := 1; i+1 < len(maps); i++ {
		m, before, after := maps[i], maps[i-1], maps[i+1]
		if m.anon && m.perms == "rw-p" && (m.end-m.start == 0x104000 || m.end-m.start == 0x4001000) &&
			guard(before) && before.end == m.start && guard(after) && after.start == m.end {
			n++
		}
	}
	return n
}
