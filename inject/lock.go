package inject

import (
	"context"
	"fmt"
	"time"

	"github.com/lptrace/lptrace/proc"
	"golang.org/x/sys/unix"
)

// trampolineLock keeps two lptraces on one process from taking turns with
// its trampoline: the one that wrote it puts its bytes back once its call
// is done, and a thread of the other could be running it then (found there
// a moment before, after the check for other tracers: the program died of
// SIGSEGV at the trampoline's address, TestRealTwoSessions). It is held
// from the moment the trampoline is written or found until it is put back
// or left. The lock is a name in the abstract socket namespace, made of
// the process's ID and start time: the kernel lets one socket hold it, and
// frees it when lptrace exits, however it ends; nothing is left on disk.
type trampolineLock struct {
	fd int
}

// lockTrampoline waits for the lock of process pid until ctx is done.
func lockTrampoline(ctx context.Context, pid int) (*trampolineLock, error) {
	name := fmt.Sprintf("@lptrace/trampoline/%d/%s", pid, proc.StartTime(pid))
	pause := 200 * time.Microsecond
	for {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("lock the trampoline: %w", err)
		}
		err = unix.Bind(fd, &unix.SockaddrUnix{Name: name})
		if err == nil {
			return &trampolineLock{fd: fd}, nil
		}
		unix.Close(fd)
		if err != unix.EADDRINUSE {
			return nil, fmt.Errorf("lock the trampoline: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another lptrace kept process %d's trampoline in use: %w", pid, ctx.Err())
		case <-time.After(pause):
		}
		if pause < 5*time.Millisecond {
			pause *= 2
		}
	}
}

func (l *trampolineLock) unlock() {
	if l != nil && l.fd >= 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
}

// takeLock gets the trampoline's lock, if this injector does not hold it.
// Taken before a thread is stopped (the stopped thread may be the one that
// holds the GIL, which the lock holder's call waits for), and again where
// the trampoline is written, for callers that stopped one themselves.
func (inj *Injector) takeLock(ctx context.Context) error {
	if inj.lock != nil {
		return nil
	}
	l, err := lockTrampoline(ctx, inj.pid)
	if err != nil {
		return err
	}
	inj.lock = l
	return nil
}

func (inj *Injector) dropLock() {
	inj.lock.unlock()
	inj.lock = nil
}
