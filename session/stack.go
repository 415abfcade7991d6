package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/transport"
	"github.com/lptrace/lptrace/wire"
)

// StackOptions says what a dump shows.
type StackOptions struct {
	Locals  bool // each frame's local variables
	Width   int  // values cut at this many characters
	Verbose bool // any object with its own repr() (runs the program's code)
	Tasks   bool // the asyncio tasks too (3.7+)
	Timeout time.Duration
}

// Dump is the Python stack of every thread (the main thread first, then by
// thread ID), and with StackOptions.Tasks the program's asyncio tasks.
type Dump struct {
	Threads []*wire.DumpThread
	Tasks   []*wire.DumpTask
}

// Stack dumps the target's stacks: each thread's state as it was before
// the dump ran, its thread ID (found in memory before 3.8) and each frame's
// source line, read from the program's files.
func (t *Target) Stack(ctx context.Context, o StackOptions) (*Dump, error) {
	pid, ch, inj, timeout := t.PID, t.ch, t.inj, o.Timeout
	// What each thread was doing, read before the dump's own work changes
	// it (one thread runs the dump, others wait for the GIL meanwhile).
	states := map[int]string{}
	for _, t := range inj.Describe() {
		states[t.TID] = t.Doing
	}
	recs, started := ch.Stream()
	src := hook.Stack(ch.Pipe(), o.Locals, o.Width, o.Verbose, o.Tasks)
	route, err := inj.RunPython(ctx, src, inject.Options{Timeout: timeout, Started: started, Small: true})
	if err != nil {
		if errors.Is(err, inject.ErrGILBusy) || errors.Is(err, inject.ErrNoSafePoint) {
			return nil, fmt.Errorf("process %d: no thread could run Python code within %v (%v); %s", pid, timeout, err, describeThreads(inj))
		}
		return nil, explainRun(ctx, pid, timeout, "the dump", err)
	}
	if route.Pending {
		select {
		case <-started:
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted; the queued dump will not run (process %d)", pid)
		case <-time.After(timeout):
			return nil, notReached(pid, timeout, route, "the dump")
		}
	}
	threads, tasks, err := readStack(ctx, pid, recs, timeout)
	if err != nil {
		return nil, err
	}
	resolveTIDs(pid, threads)
	sources := sourceLines{pid: pid}
	for _, t := range threads {
		t.State = threadState(states[t.TID])
		for i := range t.Frames {
			t.Frames[i].Source = sources.line(t.Frames[i].File, t.Frames[i].Line)
		}
	}
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].Task < tasks[j].Task })
	for _, t := range tasks {
		for i := range t.Frames {
			t.Frames[i].Source = sources.line(t.Frames[i].File, t.Frames[i].Line)
		}
	}
	// The main thread first, then by thread ID.
	sort.SliceStable(threads, func(i, j int) bool {
		if threads[i].Main != threads[j].Main {
			return threads[i].Main
		}
		return threads[i].TID < threads[j].TID || threads[i].TID == threads[j].TID && threads[i].Ident < threads[j].Ident
	})
	return &Dump{Threads: threads, Tasks: tasks}, nil
}

// readStack collects the dump's records until its end.
func readStack(ctx context.Context, pid int, recs <-chan transport.Item, timeout time.Duration) ([]*wire.DumpThread, []*wire.DumpTask, error) {
	dump := wire.Dump{PID: pid}
	deadline := time.After(timeout + 5*time.Second)
	for {
		var it transport.Item
		select {
		case it = <-recs:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("interrupted; process %d left as it was", pid)
		case <-deadline:
			return nil, nil, fmt.Errorf("process %d: the dump did not finish", pid)
		}
		if it.Err != nil {
			return nil, nil, fmt.Errorf("process %d: the dump ended early (%v)", pid, it.Err)
		}
		if err := dump.Add(it.Rec.Kind, it.Rec.Data); err != nil {
			return nil, nil, fmt.Errorf("process %d: %w", pid, err)
		}
		if dump.Done && dump.Failed != "" {
			return nil, nil, fmt.Errorf("process %d: cannot read the stacks: %s; the program runs on", pid, termsafe.Escape([]byte(dump.Failed), false))
		}
		if dump.Done {
			return dump.Threads, dump.Tasks, nil
		}
	}
}

// notReached is the error of a pending call that the main thread did not
// run within the timeout: it did not come back to the interpreter.
func notReached(pid int, timeout time.Duration, route inject.Route, what string) error {
	doing := "did not come back to the interpreter (it runs C code: a long call into a C library, or C code that keeps the GIL)"
	if route.Where != "" && route.TID == pid {
		doing = fmt.Sprintf("was in %s when %s was queued, and did not come back to the interpreter (a long call into a C library, or C code that keeps the GIL)", termsafe.Escape([]byte(route.Where), false), what)
	}
	return fmt.Errorf("process %d: no thread could run Python code within %v: the main thread %s; %s will not run", pid, timeout, doing, what)
}

// describeThreads says what each thread of the process is doing, for the
// message of a dump that found no safe point: the thread that keeps the
// GIL is the one not waiting for it.
func describeThreads(inj *inject.Injector) string {
	var parts []string
	for _, t := range inj.Describe() {
		parts = append(parts, fmt.Sprintf("thread %d (%s) %s", t.TID, termsafe.Escape([]byte(t.Name), false), t.Doing))
	}
	if len(parts) == 0 {
		return "its threads could not be read"
	}
	return "threads: " + strings.Join(parts, "; ")
}

// threadState says what a thread was doing, as a dump shows it, from the
// injector's description ("is blocked in epoll_wait" -> "blocked in
// epoll_wait").
func threadState(doing string) string {
	doing = strings.TrimPrefix(doing, "is ")
	if strings.HasPrefix(doing, "runs") {
		return "running (Python, or C code holding the GIL)"
	}
	if doing == "cannot be read" {
		return ""
	}
	return doing
}

// sourceLines reads the lines of the program's files, as the target sees
// them (its root: a container's files are under /proc/PID/root).
type sourceLines struct {
	pid   int
	files map[string][]string
}

func (s *sourceLines) line(file string, n int) string {
	if s.files == nil {
		s.files = map[string][]string{}
	}
	lines, ok := s.files[file]
	if !ok {
		path := fmt.Sprintf("/proc/%d/root%s", s.pid, file)
		if !strings.HasPrefix(file, "/") {
			path = fmt.Sprintf("/proc/%d/cwd/%s", s.pid, file) // (the program's directory now)
		}
		if !strings.HasPrefix(file, "<") && len(s.files) < 256 {
			if data, err := os.ReadFile(path); err == nil && len(data) < 16<<20 {
				lines = strings.Split(string(data), "\n")
			}
		}
		s.files[file] = lines
	}
	if n < 1 || n > len(lines) {
		return ""
	}
	return strings.TrimSpace(lines[n-1])
}

// resolveTIDs finds the thread IDs the dump could not give (before 3.8 a
// thread is known by its pthread handle only), so that they are the ones
// the trace shows: a handle is the address of the C library's thread
// structure, which holds the thread's ID at an offset found here, where
// the main thread's ID is the process's and every other thread's is one
// of the process's own. The memory is read through /proc/PID/mem: a
// thread that ended meanwhile is a failed read, never a fault.
func resolveTIDs(pid int, threads []*wire.DumpThread) {
	var main *wire.DumpThread
	missing := 0
	for _, t := range threads {
		if t.Main {
			main = t
		}
		if t.TID == 0 && t.Ident != 0 {
			missing++
		}
	}
	if missing == 0 || main == nil || main.Ident == 0 {
		return
	}
	tids, err := proc.Threads(pid)
	if err != nil {
		return
	}
	live := map[int]bool{}
	for _, tid := range tids {
		live[tid] = true
	}
	mem := proc.OpenMem(pid, false)
	if !mem.Opened() {
		return
	}
	defer mem.Close()
	const span = 0x1000
	read := func(ident uint64) []byte {
		buf := make([]byte, span)
		if n, err := mem.ReadAt(buf, int64(ident)); err != nil || n != span {
			return nil
		}
		return buf
	}
	handles := map[*wire.DumpThread][]byte{}
	for _, t := range threads {
		if t.Ident != 0 && (t == main || t.TID == 0) {
			if b := read(t.Ident); b != nil {
				handles[t] = b
			}
		}
	}
	if handles[main] == nil {
		return
	}
	for off := 0; off+4 <= span; off += 4 {
		if int(int32(binary.LittleEndian.Uint32(handles[main][off:]))) != pid {
			continue
		}
		found := map[*wire.DumpThread]int{}
		seen := map[int]bool{}
		for t, b := range handles {
			if t == main {
				continue
			}
			tid := int(int32(binary.LittleEndian.Uint32(b[off:])))
			if !live[tid] || tid == pid || seen[tid] {
				found = nil
				break
			}
			seen[tid] = true
			found[t] = tid
		}
		if found != nil && len(found) == len(handles)-1 {
			for t, tid := range found {
				t.TID = tid
			}
			return
		}
	}
}
