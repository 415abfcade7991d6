// Command lptrace shows what a running Python program is doing, by attaching
// to it with ptrace: like strace, for Python functions.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"time"
	"unsafe"

	"github.com/lptrace/lptrace/launch"
	"github.com/lptrace/lptrace/session"
	"github.com/lptrace/lptrace/termsafe"
	"golang.org/x/sys/unix"
)

// The launch helper must stop and exec from the main thread (tid = pid),
// the one lptrace traces: init-time locking keeps main() there.
func init() { runtime.LockOSThread() }

func main() {
	if os.Getenv(launch.HelperEnv) != "" && len(os.Args) > 1 {
		os.Exit(launch.RunHelper(os.Args[1:]))
	}
	runtime.UnlockOSThread()
	session.QuickStart()
	// A closed stdout (lptrace ... | head) must be an error to handle, not a
	// signal that kills lptrace before it cleans up.
	signal.Ignore(unix.SIGPIPE)
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes lptrace with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 {
		// lptrace alone: how to use it, as a mistake.
		fmt.Fprint(stderr, shortUsage)
		return 2
	}
	if args[1] == "help" {
		// lptrace help [COMMAND]: the help, of the command if named.
		args = append(append([]string{args[0]}, args[2:]...), "--help")
	}
	app := newApp(stdout, stderr)
	err := app.Run(reorderArgs(app, splitAttached(app, args)))
	if err == nil {
		return 0
	}
	var code session.ExitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var sig session.DiedBySignal
	if errors.As(err, &sig) {
		// Die the launched program's death. Core dumps stay the program's.
		dieOf(unix.Signal(sig))
		return 128 + int(sig)
	}
	var usage usageError
	if errors.As(err, &usage) {
		fmt.Fprintf(stderr, "lptrace: %s\nTry 'lptrace --help'.\n", termsafe.Escape([]byte(flagHint(app, err.Error())), false))
		return 2
	}
	// Messages may quote paths and names from the target: escape them.
	fmt.Fprintf(stderr, "lptrace: %s\n", termsafe.Escape([]byte(err.Error()), false))
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// dieOf ends lptrace by sig, as strace does when its program died of it.
// The Go runtime keeps its own handlers of the signals a fault raises
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL) and of SIGABRT, where a signal.Reset
// is not enough: it would print its crash dump instead. So the default
// action is set with the system call itself, the signal unblocked, and
// sent to this thread.
func dieOf(sig unix.Signal) {
	signal.Reset(sig)
	var rl unix.Rlimit
	unix.Setrlimit(unix.RLIMIT_CORE, &rl)
	runtime.LockOSThread()
	var act [4]uint64 // struct kernel_sigaction {handler, flags, restorer, mask}: SIG_DFL
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	set := uint64(1) << (uint(sig) - 1)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_UNBLOCK, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0)
	unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	time.Sleep(100 * time.Millisecond)
}
