// Safe points: which threads are parked where a call may run, what each
// thread is doing, and the code a thread must never be stopped in.

package inject

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/symbols"
)

// Parked describes a thread blocked in a system call.
type Parked struct {
	TID     int
	Syscall int
}

// Classify reads where each thread is without stopping any: parked in a
// blocking call with the GIL released (safe for direct calls), or not.
func (inj *Injector) Classify() (parked []Parked, running []int, err error) {
	tids, err := proc.Threads(inj.pid)
	if err != nil {
		return nil, nil, err
	}
	for _, tid := range tids {
		sc, err := proc.ReadSyscall(inj.pid, tid)
		if err != nil {
			continue
		}
		switch {
		case sc.Running:
			running = append(running, tid)
		case sc.Nr == sysRestartSyscall:
			// A timed wait resumed after an interruption; the kernel does not
			// say which. The C library function it was called from does: a
			// sleep or a poll is safe, a futex wait (maybe the GIL's) is not.
			if restartParks && inj.inRestartableSleep(sc.PC) {
				parked = append(parked, Parked{tid, sc.Nr})
			}
		case inj.safeSyscall(sc.Nr, sc.Args[0], sc.Args[1]):
			parked = append(parked, Parked{tid, sc.Nr})
		}
	}
	return parked, running, nil
}

// ThreadState says what a thread is doing, for messages.
type ThreadState struct {
	TID   int
	Name  string
	Doing string // "runs", "waits for the GIL", "is blocked in nanosleep", ...
}

// Describe reads what every thread is doing, without stopping any. When no
// safe point comes, the thread that is neither waiting for the GIL nor
// parked is the one holding it.
func (inj *Injector) Describe() []ThreadState {
	tids, _ := proc.Threads(inj.pid)
	var out []ThreadState
	for _, tid := range tids {
		t := ThreadState{TID: tid}
		if st, err := proc.ReadTaskStatus(inj.pid, tid); err == nil {
			t.Name = st.Name
		}
		sc, err := proc.ReadSyscall(inj.pid, tid)
		switch {
		case err != nil:
			t.Doing = "cannot be read"
		case sc.Running && inj.seenAt[tid] != 0:
			t.Doing = "runs (last stopped in " + inj.Where(inj.seenAt[tid]) + ")"
		case sc.Running:
			t.Doing = "runs (in C code, or Python code holding the GIL)"
		case sc.Nr == sysFutex && inj.tgt.Python.InStaticData(sc.Args[0]):
			t.Doing = "waits for the GIL"
		default:
			t.Doing = "is blocked in " + SyscallName(sc.Nr)
		}
		out = append(out, t)
	}
	return out
}

// safeSyscall: blocking calls that CPython makes with the GIL released.
// A futex wait is safe as a wait of the program (a Python lock, a queue, a
// condition variable of a C library), never as a wait on the GIL:
// re-entering the GIL from inside its own wait deadlocks (seen on 3.8 and
// 3.11-3.13). The GIL's mutex and condition variable are static variables
// of the runtime (_PyRuntime on 3.7+, file-level statics on 3.6; checked
// on every version 3.6-3.15 here), so a futex inside the runtime's data
// (.data or .bss) is refused. 2.7's GIL is a semaphore on the heap: a
// nested wait on a semaphore is harmless (and the GIL check in the call
// sequence still applies). Priority-inheritance and requeue operations are
// refused. Of fcntl, only a wait for a lock (the others do not block).
//
// The list holds where the standard library blocks with the GIL released
// (checked on every version): time.sleep (select before 3.11,
// clock_nanosleep after), socket (accept, recv, send, connect, poll for
// timeouts, sendfile), selectors and asyncio (select, poll, epoll_wait,
// epoll_pwait), subprocess and os (wait4, waitid, read, write), threading
// and queue (futex), signal (pause, sigsuspend, sigtimedwait), fcntl
// (lockf, flock).
func (inj *Injector) safeSyscall(nr int, uaddr, op uint64) bool {
	if _, ok := parkedSyscalls[nr]; !ok || nr == sysRestartSyscall {
		return false // restart_syscall: see Classify
	}
	if nr == sysFcntl {
		const setLockWait, ofdSetLockWait = 7, 38 // F_SETLKW, F_OFD_SETLKW: fcntl.lockf, fcntl.fcntl
		return op == setLockWait || op == ofdSetLockWait
	}
	if nr == sysFutex {
		if inj.tgt.Python.InStaticData(uaddr) {
			return false
		}
		const cmdMask = 0x7f
		switch op & cmdMask {
		case 0, 9: // FUTEX_WAIT, FUTEX_WAIT_BITSET
			return true
		}
		return false
	}
	return true
}

// Compiled on first use, as the other regular expressions here (see
// symbols' pythonName).
var restartableSleep = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^_*(clock_nanosleep|nanosleep|usleep|sleep|poll|ppoll|select|pselect|epoll_wait|epoll_pwait)(@|$|_)`)
})

// inRestartableSleep reports whether pc lies in a C library function that
// sleeps or polls.
func (inj *Injector) inRestartableSleep(pc uint64) bool {
	if inj.tgt.Libc == nil {
		return false
	}
	name, ok := inj.tgt.Libc.SymbolAt(pc)
	return ok && restartableSleep().MatchString(name)
}

// (lock, enqueue, dequeue, fix_status: small static helpers of the locks,
// e.g. parking_lot.c's and thread_pthread.h's, should a build not inline them.)
var pendingMachinery = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)pending|eval_breaker|signal|PyThread_|mutex|parking|semaphore|gil|_PyMem|malloc|free|lock|enqueue|dequeue|fix_status`)
})

// inPendingMachinery reports whether pc may be inside code that holds the
// lock Py_AddPendingCall takes, or inside the C runtime (the C library, the
// loader, code lptrace cannot tell): a call to Py_AddPendingCall from
// there could deadlock on it. Another library's code (a BLAS routine that
// numpy called with the GIL released, for a second) holds no lock of
// CPython's, and Py_AddPendingCall is made to be called from any thread,
// with or without the GIL.
func (inj *Injector) inPendingMachinery(tid int, pc uint64) bool {
	py := inj.tgt.Python
	m, ok := inj.mappingAt(pc)
	if !ok {
		return true
	}
	if m.Path != py.Path {
		return inj.inCRuntime(m) && !inj.inStringOp(tid, pc)
	}
	name, ok := py.SymbolAt(pc)
	if !ok {
		return true // unknown static function: be careful
	}
	return pendingMachinery().MatchString(name)
}

// inCRuntime tells whether mapping m is the C runtime's code (C library,
// loader, threads library) or code of no file (the vDSO, code made at run
// time): lptrace cannot tell what locks it holds.
func (inj *Injector) inCRuntime(m proc.Mapping) bool {
	for _, mod := range []*symbols.Module{inj.tgt.Libc, inj.tgt.Loader} {
		if mod != nil && m.Path == mod.Path {
			return true
		}
	}
	return !strings.HasPrefix(m.Path, "/") || cRuntime().MatchString(filepath.Base(m.Path))
}

var cRuntime = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(libc|libpthread|librt|libdl|ld-linux|ld-musl|ld)[-.]`)
})

// Where names the code at pc for messages: "libblas.so.3 (dgemm_)".
func (inj *Injector) Where(pc uint64) string {
	m, ok := inj.mappingAt(pc)
	if !ok {
		return fmt.Sprintf("unmapped code at %#x", pc)
	}
	if m.Path == "" || !strings.HasPrefix(m.Path, "/") {
		return fmt.Sprintf("code made at run time at %#x", pc)
	}
	where := filepath.Base(m.Path)
	for _, mod := range []*symbols.Module{inj.tgt.Python, inj.tgt.Libc, inj.tgt.Loader} {
		if mod != nil && mod.Path == m.Path {
			if name, ok := mod.SymbolAt(pc); ok {
				return where + " (" + name + ")"
			}
		}
	}
	return where
}
