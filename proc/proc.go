// Package proc reads what lptrace needs to know about a process from /proc:
// its state, threads, memory mappings and the system call each thread is
// blocked in. It never changes anything.
package proc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoProcess means there is no process with that PID.
var ErrNoProcess = errors.New("no such process")

// Status holds the fields of /proc/PID/status (or a task's) that lptrace uses.
type Status struct {
	Name      string
	State     byte // R, S, D, T, t, Z, X, I
	Tgid      int
	PPid      int
	TracerPid int
	UID       [4]int // real, effective, saved, filesystem
	GID       [4]int
	Threads   int
	SigBlk    uint64 // per thread
	SigIgn    uint64
	SigCgt    uint64
	Features  string // x86_Thread_features: non-empty when e.g. a shadow stack is enabled
}

// ReadStatus parses /proc/PID/status.
func ReadStatus(pid int) (*Status, error) {
	return readStatusFile(fmt.Sprintf("/proc/%d/status", pid))
}

// ReadTaskStatus parses /proc/PID/task/TID/status.
func ReadTaskStatus(pid, tid int) (*Status, error) {
	return readStatusFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
}

func readStatusFile(path string) (*Status, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ErrNoProcess
		}
		return nil, err
	}
	return ParseStatus(data), nil
}

// ParseStatus parses the text of a status file; unknown lines are ignored.
func ParseStatus(data []byte) *Status {
	st := &Status{}
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			st.Name = val
		case "State":
			if val != "" {
				st.State = val[0]
			}
		case "Tgid":
			st.Tgid, _ = strconv.Atoi(val)
		case "PPid":
			st.PPid, _ = strconv.Atoi(val)
		case "TracerPid":
			st.TracerPid, _ = strconv.Atoi(val)
		case "Threads":
			st.Threads, _ = strconv.Atoi(val)
		case "Uid", "Gid":
			dst := &st.UID
			if key == "Gid" {
				dst = &st.GID
			}
			for i, f := range strings.Fields(val) {
				if i < 4 {
					dst[i], _ = strconv.Atoi(f)
				}
			}
		case "SigBlk":
			st.SigBlk, _ = strconv.ParseUint(val, 16, 64)
		case "SigIgn":
			st.SigIgn, _ = strconv.ParseUint(val, 16, 64)
		case "SigCgt":
			st.SigCgt, _ = strconv.ParseUint(val, 16, 64)
		case "x86_Thread_features":
			st.Features = val
		}
	}
	return st
}

// Threads lists the thread IDs of a process, the main thread first.
func Threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ErrNoProcess
		}
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Slice(tids, func(i, j int) bool {
		if tids[i] == pid || tids[j] == pid {
			return tids[i] == pid
		}
		return tids[i] < tids[j]
	})
	return tids, nil
}

// IsKernelThread reports whether pid is a kernel thread (PF_KTHREAD).
func IsKernelThread(pid int) bool {
	f := statFields(pid)
	// state(3) ppid pgrp session tty_nr tpgid flags(9).
	if len(f) < 7 {
		return false
	}
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	return flags&0x00200000 != 0
}

// StartTime is field 22 of /proc/PID/stat, the process's start in clock
// ticks since boot: with the ID it tells a process from a later one that
// got the same ID ("" if it is gone).
func StartTime(pid int) string {
	if f := statFields(pid); len(f) > 19 {
		return f[19]
	}
	return ""
}

// statFields are the fields of /proc/PID/stat from the third (the state)
// on, nil if it cannot be read.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return parseStatFields(data)
}

// parseStatFields splits a stat line after the command name, which is in
// parentheses and may hold spaces and parentheses itself.
func parseStatFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// Syscall is what /proc/PID/task/TID/syscall says about a thread.
type Syscall struct {
	Running bool // not blocked in a system call
	Nr      int  // system call number, -1 when not in one
	Args    [6]uint64
	SP, PC  uint64
}

// ReadSyscall reads /proc/PID/task/TID/syscall.
func ReadSyscall(pid, tid int) (Syscall, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if err != nil {
		if os.IsNotExist(err) {
			return Syscall{}, ErrNoProcess
		}
		return Syscall{}, err
	}
	return ParseSyscall(string(data))
}

// ParseSyscall parses the text of a syscall file.
func ParseSyscall(s string) (Syscall, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Syscall{}, errors.New("empty syscall file")
	}
	if f[0] == "running" {
		return Syscall{Running: true, Nr: -1}, nil
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return Syscall{}, fmt.Errorf("bad syscall number %q", f[0])
	}
	sc := Syscall{Nr: nr}
	if nr == -1 {
		// Blocked but not in a system call (e.g. stopped): only sp and pc.
		if len(f) >= 3 {
			sc.SP, _ = strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
			sc.PC, _ = strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 64)
		}
		return sc, nil
	}
	if len(f) < 9 {
		return Syscall{}, fmt.Errorf("short syscall line %q", s)
	}
	for i := 0; i < 6; i++ {
		sc.Args[i], _ = strconv.ParseUint(strings.TrimPrefix(f[1+i], "0x"), 16, 64)
	}
	sc.SP, _ = strconv.ParseUint(strings.TrimPrefix(f[7], "0x"), 16, 64)
	sc.PC, _ = strconv.ParseUint(strings.TrimPrefix(f[8], "0x"), 16, 64)
	return sc, nil
}

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Perms      string // e.g. "r-xp"
	Offset     uint64
	Dev        string
	Inode      uint64
	Path       string // may be empty, "[stack]", or end in " (deleted)"
}

// Exec reports whether the mapping is executable.
func (m Mapping) Exec() bool { return len(m.Perms) >= 3 && m.Perms[2] == 'x' }

// ReadMaps parses /proc/PID/maps.
func ReadMaps(pid int) ([]Mapping, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ErrNoProcess
		}
		return nil, err
	}
	defer f.Close()
	return ParseMaps(f)
}

// ParseMaps parses the text of a maps file. Malformed lines are an error,
// never a panic.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func parseMapsLine(line string) (Mapping, error) {
	// address perms offset dev inode [path]; the path may contain spaces.
	var fields [5]string
	rest := line
	for i := 0; i < 5; i++ {
		rest = strings.TrimLeft(rest, " ")
		j := strings.IndexByte(rest, ' ')
		if j < 0 {
			if i < 4 {
				return Mapping{}, fmt.Errorf("too few fields in %q", line)
			}
			fields[i], rest = rest, ""
			break
		}
		fields[i], rest = rest[:j], rest[j:]
	}
	var m Mapping
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return m, fmt.Errorf("bad address range %q", fields[0])
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("bad start address %q", lo)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil || m.End < m.Start {
		return m, fmt.Errorf("bad end address %q", hi)
	}
	if len(fields[1]) != 4 {
		return m, fmt.Errorf("bad permissions %q", fields[1])
	}
	m.Perms = fields[1]
	if m.Offset, err = strconv.ParseUint(fields[2], 16, 64); err != nil {
		return m, fmt.Errorf("bad offset %q", fields[2])
	}
	m.Dev = fields[3]
	if m.Inode, err = strconv.ParseUint(fields[4], 10, 64); err != nil {
		return m, fmt.Errorf("bad inode %q", fields[4])
	}
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}

// FileBacked reports whether the mapping comes from a regular file.
func (m Mapping) FileBacked() bool {
	return m.Inode != 0 && strings.HasPrefix(m.Path, "/")
}

// OpenPath returns a path through which lptrace can open the file behind a
// mapping of process pid: through /proc/PID/root, so that a process in
// another mount namespace (a container) is handled, or through
// /proc/PID/map_files when the file was deleted or replaced since.
func (m Mapping) OpenPath(pid int) string {
	p := strings.TrimSuffix(m.Path, " (deleted)")
	if p == m.Path {
		root := filepath.Join(fmt.Sprintf("/proc/%d/root", pid), p)
		if _, err := os.Stat(root); err == nil {
			return root
		}
	}
	return fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End)
}

// StackLimit returns the soft "Max stack size" of a process in bytes
// (0 when unlimited or unknown).
func StackLimit(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Max stack size") {
			f := strings.Fields(strings.TrimPrefix(line, "Max stack size"))
			if len(f) > 0 {
				v, _ := strconv.ParseUint(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// ReadWchan returns the kernel function a blocked thread sleeps in.
func ReadWchan(pid, tid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/wchan", pid, tid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// Alive reports whether the process exists and has not exited (a zombie has).
func Alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && i+2 < len(data) && data[i+2] != 'Z' && data[i+2] != 'X'
}

// ExitStatus returns how a process that is ending (or ended, not yet
// reaped) ends, in waitpid's form: the kernel sets it as the process
// starts its exit, before it closes its files, and shows it in
// /proc/PID/stat until its parent reaps it. final tells whether the
// process is a zombie (else it may still run: a status of 0 then means
// nothing yet); ok is false when it is gone.
func ExitStatus(pid int) (status int, final, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, false
	}
	return parseExitStatus(data)
}

func parseExitStatus(stat []byte) (status int, final, ok bool) {
	f := parseStatFields(stat)
	// f[0] is field 3 (the state); exit_code is field 52.
	if len(f) < 50 {
		return 0, false, false
	}
	code, err := strconv.Atoi(f[49])
	if err != nil {
		return 0, false, false
	}
	return code, f[0] == "Z" || f[0] == "X", true
}

// EntryPoint returns the address of the program's entry point (AT_ENTRY
// of /proc/PID/auxv): once a new program reaches it, the dynamic loader
// has mapped every library it needs.
func EntryPoint(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return 0, err
	}
	return parseAuxv(b, 9) // AT_ENTRY
}

func parseAuxv(b []byte, key uint64) (uint64, error) {
	for i := 0; i+16 <= len(b); i += 16 {
		k, v := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		if k == key {
			return v, nil
		}
		if k == 0 {
			break
		}
	}
	return 0, fmt.Errorf("no entry %d in the auxiliary vector", key)
}

// ProgramID identifies the program a process runs now: it changes when the
// process execs, even into the same executable. It is the auxiliary vector
// (the addresses of the stack, vDSO and loader, randomised per exec) and
// the 16 random bytes the kernel gives each new program (AT_RANDOM), which
// tell two execs apart even with address randomisation off. Empty when the
// process is gone.
func ProgramID(pid int) string {
	auxv, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil || len(auxv) == 0 {
		return ""
	}
	id := string(auxv)
	if addr, err := parseAuxv(auxv, 25); err == nil { // AT_RANDOM
		if m := OpenMem(pid, false); m.Opened() {
			var rnd [16]byte
			if n, _ := m.ReadAt(rnd[:], int64(addr)); n == len(rnd) {
				id += string(rnd[:])
			}
			m.Close()
		}
	}
	return id
}

// Executable is the path of the program the process runs, as the kernel
// names it (empty when unknown).
func Executable(pid int) string {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return exe
}

// ThreadName is a thread's name (its comm), empty when unknown.
func ThreadName(pid, tid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid))
	return strings.TrimSpace(string(data))
}

// ExitWatch follows how a process ends, through a pidfd opened while it
// runs: Linux 6.15+ keeps its exit status there even once its parent
// reaped it (a process lptrace is not the parent of). Elsewhere /proc
// shows it from the start of its exit until the reaping only.
type ExitWatch struct {
	pid, fd int
	status  int
	final   bool
}

// WatchExit starts following pid's end.
func WatchExit(pid int) *ExitWatch {
	w := &ExitWatch{pid: pid, fd: -1}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		w.fd = fd
	}
	w.Note()
	return w
}

// Note reads /proc while the process is there: call it as soon as its
// end shows (its pipe ended).
func (w *ExitWatch) Note() {
	if w.final {
		return
	}
	if status, final, ok := ExitStatus(w.pid); ok && (status != 0 || final) {
		w.status, w.final = status, final || status != 0
	}
}

// Status returns how the process ended, waiting up to limit for it to be
// known; ok is false if it never showed.
func (w *ExitWatch) Status(limit time.Duration) (status int, ok bool) {
	end := time.Now().Add(limit)
	for {
		if status, ok := w.Exact(); ok {
			return status, true
		}
		if !Alive(w.pid) && w.fd < 0 {
			// Gone without a status seen: it exited while running
			// (a status of 0 shows as nothing until the zombie).
			_, _, there := ExitStatus(w.pid)
			return 0, !there
		}
		if time.Now().After(end) {
			return 0, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ioctlPidfdInfo(fd int, info *unix.PidfdInfo) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PIDFD_GET_INFO, uintptr(unsafe.Pointer(info)))
	if e != 0 {
		return e
	}
	return nil
}

// Exact returns how the process ended only if that was seen: in /proc
// while it was a zombie, or from its pidfd (Linux 6.15+). Status may also
// conclude from a process gone without a word; Exact does not.
func (w *ExitWatch) Exact() (status int, ok bool) {
	w.Note()
	if w.final {
		return w.status, true
	}
	if w.fd >= 0 {
		info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
		if err := ioctlPidfdInfo(w.fd, &info); err == nil && info.Mask&unix.PIDFD_INFO_EXIT != 0 {
			return int(info.Exit_code), true
		} else if err != nil && err != unix.ESRCH {
			w.Close() // an older kernel: /proc alone
		}
	}
	return 0, false
}

// Wait waits until the process has exited (true) or done is closed
// (false): on its pidfd, which becomes readable at its exit, or, without
// one, by looking at /proc every 100 ms.
func (w *ExitWatch) Wait(done <-chan struct{}) bool {
	for {
		if w.fd >= 0 {
			fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, 100); err == nil && n > 0 {
				return true
			} else if err != nil && err != unix.EINTR {
				w.Close()
			}
		} else {
			if !Alive(w.pid) {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		select {
		case <-done:
			return false
		default:
		}
	}
}

// Close releases the pidfd.
func (w *ExitWatch) Close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
