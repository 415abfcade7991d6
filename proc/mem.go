package proc

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Mem is a process's memory: /proc/PID/mem, opened once (reads and writes
// without stopping the process; writes reach read-only pages too, as
// ptrace's do), or, where it cannot be opened, process_vm_readv/writev.
type Mem struct {
	pid int
	f   *os.File
}

var (
	_ io.ReaderAt = (*Mem)(nil)
	_ io.WriterAt = (*Mem)(nil)
)

// OpenMem opens pid's memory, for writing too if write. It never fails:
// without the file, its transfers go through process_vm_readv/writev.
func OpenMem(pid int, write bool) *Mem {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	m := &Mem{pid: pid}
	if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), flag, 0); err == nil {
		m.f = f
	}
	return m
}

// Opened tells whether /proc/PID/mem is open. (A nil Mem is one that is
// not: its ReadThrough and WriteThrough go through the thread given.)
func (m *Mem) Opened() bool { return m != nil && m.f != nil }

// Close releases the file.
func (m *Mem) Close() error {
	if !m.Opened() {
		return nil
	}
	err := m.f.Close()
	m.f = nil
	return err
}

// ReadAt reads len(b) bytes at address addr.
func (m *Mem) ReadAt(b []byte, addr int64) (int, error) {
	if m.f != nil {
		return m.f.ReadAt(b, addr)
	}
	return vm(m.pid, uint64(addr), b, false)
}

// WriteAt writes b at address addr.
func (m *Mem) WriteAt(b []byte, addr int64) (int, error) {
	if m.f != nil {
		return m.f.WriteAt(b, addr)
	}
	return vm(m.pid, uint64(addr), b, true)
}

// ReadThrough reads exactly len(b) bytes at addr; without the file,
// through thread tid (given a thread lptrace holds stopped, only its
// address space is reached, never a program the process exec'd since).
func (m *Mem) ReadThrough(tid int, addr uint64, b []byte) error {
	return m.exact("read", tid, addr, b, false)
}

// WriteThrough writes all of b at addr, like ReadThrough.
func (m *Mem) WriteThrough(tid int, addr uint64, b []byte) error {
	return m.exact("write", tid, addr, b, true)
}

func (m *Mem) exact(what string, tid int, addr uint64, b []byte, write bool) error {
	if len(b) == 0 {
		return nil
	}
	var n int
	var err error
	switch {
	case m.Opened() && write:
		n, err = m.f.WriteAt(b, int64(addr))
	case m.Opened():
		n, err = m.f.ReadAt(b, int64(addr))
	default:
		n, err = vm(tid, addr, b, write)
	}
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
		if !write {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		return fmt.Errorf("%s %d bytes at %#x: %d done: %w", what, len(b), addr, n, err)
	}
	return nil
}

// VMRead reads exactly len(b) bytes of process (or thread) pid's memory at
// addr with process_vm_readv, without opening anything.
func VMRead(pid int, addr uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := vm(pid, addr, b, false)
	if err == nil && n != len(b) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("read %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

func vm(pid int, addr uint64, b []byte, write bool) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	var n int
	var err error
	if write {
		n, err = unix.ProcessVMWritev(pid, local, remote, 0)
	} else {
		n, err = unix.ProcessVMReadv(pid, local, remote, 0)
	}
	if errors.Is(err, unix.ESRCH) {
		err = ErrNoProcess
	}
	return n, err
}
