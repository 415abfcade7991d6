// Package inject runs code inside a thread of a live process, and runs
// Python code inside a live CPython interpreter, at safe points only.
//
// A call works like this: lptrace seizes one thread and stops it, writes a
// context block below its stack pointer (the calls to make, the registers to
// restore, room for the FP/vector state) and points rip at a trampoline
// placed in the unused padding after libc's code. The trampoline saves the
// FP/vector state, makes the calls, restores that state and raises a signal
// at itself; lptrace collects the results at that stop and puts the thread's
// registers back. If lptrace dies at any instant, the signal is one ignored
// by default and the trampoline restores the thread by itself: the target
// never depends on lptrace surviving.
//
// Where Python code runs (the safe points):
//
//   - Direct: in a thread parked in a blocking system call (sleep, accept,
//     poll, a lock wait...). CPython releases the GIL around such calls, so
//     PyGILState_Ensure there takes the GIL like any thread starting to run
//     Python. A call first asks PyGILState_Check (3.x) or compares the
//     thread's state with _PyThreadState_Current (2.7) and gives up if the
//     thread holds the GIL after all (a C extension blocking with it), since
//     running Python there would re-enter whatever that thread was doing.
//     Threads waiting for the GIL itself (a condition-variable futex wait)
//     are never used: re-entering the GIL from inside its own wait deadlocks.
//   - Pending: when no thread is parked (a CPU-bound program), the code is
//     queued with Py_AddPendingCall and the main thread's eval loop runs it
//     between two bytecodes, GIL held, interpreter consistent. The queueing
//     call is made from a parked thread when there is one, else from the
//     running main thread outside of CPython's pending-call machinery.
//   - A thread running arbitrary code is never made to run Python.
package inject

import (
	"errors"
	"time"

	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
)

// Call is one function or system call made by the trampoline.
type Call struct {
	Fn      uint64    // address; FnMemcpy, FnSyscall or FnAddInt32 for the built-ins
	Args    [6]uint64 // System V argument registers
	ArgFrom [6]byte   // k+1: argument i is the result of call k
	Flags   uint64    // When... flags
	Aux     uint64    // system call number (FnSyscall) or address (AbortIfEqualMem)
}

// Built-in operations of the trampoline.
const (
	FnMemcpy  = 0
	FnSyscall = 1
	// FnAddInt32 adds Args[2] (its low 32 bits, signed) to the int32 at
	// Args[0] + Args[1]; the result is the new value.
	FnAddInt32 = 2
	// FnSub's result is Args[0] - Args[1].
	FnSub = 3
)

// Call flags: when the sequence stops, and which calls run after a stop.
const (
	AbortIfZero     = 1
	AbortIfNonzero  = 2
	AbortIfError    = 4 // -1 or -errno
	AbortIfEqualMem = 8 // result != 0 and result == *(uint64*)Aux
	Always          = 16
	Cleanup         = 32 // runs only after an abort
)

var (
	// ErrNoSafePoint means no thread reached a point where running Python
	// is safe before the timeout.
	ErrNoSafePoint = errors.New("no safe point")
	// ErrTargetStopped means the target was stopped by job control (SIGSTOP).
	ErrTargetStopped = errors.New("the process is stopped")
	// ErrExited means the process exited during the operation.
	ErrExited = errors.New("the process exited")
	// ErrExec means the process replaced its program (execve): the
	// interpreter lptrace worked on is gone, and so is all it wrote.
	ErrExec = errors.New("the process exec'd another program")
	// ErrUnusableThread means a thread cannot take a call (try another).
	ErrUnusableThread = errors.New("thread not usable")
	// ErrUnsupportedArch means injection is not implemented for this CPU.
	ErrUnsupportedArch = errors.New("injection is not implemented on this architecture")
)

// Injector injects calls into one process.
type Injector struct {
	tr     *ptrace.Tracer
	tgt    *symbols.Target
	pid    int
	xsave  int
	sigs   map[int]int // completion signal per thread
	tramp  uint64      // 0 until installed
	found  []byte      // bytes at tramp before lptrace wrote there
	wrote  bool
	region *symbols.Module
	// lock is held while the trampoline is in use (see trampolineLock).
	lock *trampolineLock
	// inFlight is set once lptrace let go of a thread in the middle of a
	// call: that thread will run the trampoline on its own, so its bytes
	// must stay.
	inFlight bool
	// program identifies the program at New (proc.ProgramID); execd is set
	// once it was replaced: every address lptrace knows is then wrong, so
	// the injector touches nothing any more.
	program string
	execd   bool
	// mem is /proc/PID/mem opened at New: it refers to that address space
	// for good, so nothing written through it can land in a program the
	// process exec'd since (the kernel drops writes to a replaced one).
	mem *proc.Mem
	// holdFor, when set, makes the threads attached from now on hold the
	// program's signals (see Thread.hold).
	holdFor time.Duration
	// mapsRead is when tgt.Maps was read; stackLimit is the process's
	// RLIMIT_STACK as first read (1: none found).
	mapsRead   time.Time
	stackLimit uint64
	restops    int // how often a busy thread was stopped again (Restops)
	// seenAt is where each running thread was last stopped (Describe).
	seenAt map[int]uint64
}

// Restops says how often a busy thread was let run on and stopped again
// because it was stopped where no call may be queued (LPTRACE_TIMING).
func (inj *Injector) Restops() int { return inj.restops }

// New prepares an injector for the process described by tgt.
func New(tr *ptrace.Tracer, tgt *symbols.Target) *Injector {
	inj := &Injector{tr: tr, tgt: tgt, pid: tgt.PID, program: tgt.Program, mapsRead: tgt.MapsRead}
	inj.mem = proc.OpenMem(tgt.PID, true)
	if inj.Execd() {
		// Exec'd before the file was opened: through held threads only.
		inj.mem.Close()
	}
	return inj
}

// Close releases what New opened.
func (inj *Injector) Close() {
	inj.dropLock()
	inj.mem.Close()
}
