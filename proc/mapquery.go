package proc

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Maps answers questions about a process's memory mappings without reading
// all of /proc/PID/maps where the kernel allows it: the PROCMAP_QUERY ioctl
// (Linux 6.11+) gives the mapping at an address, or the next file mapping.
// The kernel formats the text file at 2-4 µs a line, holding the target's
// memory map lock, and a process may have tens of thousands of mappings
// (20,000 private ones cost an attach 16-19 ms; asked, 3-4 ms). Older
// kernels: the text, parsed whole, as before.
type Maps struct {
	pid   int
	f     *os.File // /proc/PID/maps, opened once: queries go through it
	query bool     // the kernel answers PROCMAP_QUERY
	mu    sync.Mutex
	name  []byte // the kernel writes a mapping's name here (under mu)
}

// OpenMaps opens the mappings of process pid.
func OpenMaps(pid int) (*Maps, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ErrNoProcess
		}
		return nil, err
	}
	m := &Maps{pid: pid, f: f, query: true, name: make([]byte, procmapQueryNameSize)}
	// One query tells whether the kernel answers (ENOTTY if it has no such
	// ioctl; a security module may refuse it): anything but an answer, or
	// "no mapping there", and the text serves.
	if _, _, err := m.ask(0, queryCoveringOrNext); err != nil {
		m.query = false
	}
	return m, nil
}

// Queries reports whether the kernel answers queries (else every answer
// comes from the whole text).
func (m *Maps) Queries() bool { return m.query }

// Close releases the file.
func (m *Maps) Close() error { return m.f.Close() }

// Files returns the file-backed mappings, in address order.
func (m *Maps) Files() ([]Mapping, error) {
	if m.query {
		out, err := m.askFiles()
		if !errors.Is(err, errNameTooLong) {
			return out, err
		}
		// A path longer than PATH_MAX, which the text shows all the same.
	}
	return m.text(func(mp Mapping) bool { return mp.Inode != 0 })
}

// askFiles asks for each file mapping in turn, from address 0 up.
func (m *Maps) askFiles() ([]Mapping, error) {
	var out []Mapping
	for addr := uint64(0); ; {
		mp, ok, err := m.ask(addr, queryCoveringOrNext|queryFileBacked)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, mp)
		if mp.End <= addr {
			return nil, fmt.Errorf("maps of process %d: the query went backwards at %#x", m.pid, addr)
		}
		addr = mp.End
	}
}

// At returns the mapping that contains addr (ok false: none does).
func (m *Maps) At(addr uint64) (Mapping, bool, error) {
	if m.query {
		mp, ok, err := m.ask(addr, 0)
		if !errors.Is(err, errNameTooLong) {
			return mp, ok, err
		}
	}
	all, err := m.text(func(mp Mapping) bool { return addr >= mp.Start && addr < mp.End })
	if err != nil || len(all) == 0 {
		return Mapping{}, false, err
	}
	return all[0], true, nil
}

// text reads the whole file again (a moment later it may differ) and keeps
// the mappings keep accepts.
func (m *Maps) text(keep func(Mapping) bool) ([]Mapping, error) {
	all, err := ReadMaps(m.pid)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, mp := range all {
		if keep(mp) {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}

// From linux/fs.h.
const (
	procmapQuery         = 0xC0686611 // _IOWR('f', 17, struct procmap_query)
	queryCoveringOrNext  = 0x10
	queryFileBacked      = 0x20
	vmaReadable          = 0x01
	vmaWritable          = 0x02
	vmaExecutable        = 0x04
	vmaShared            = 0x08
	procmapQuerySize     = 104
	procmapQueryNameSize = 4096 // PATH_MAX
)

// procmapQueryArg is struct procmap_query.
type procmapQueryArg struct {
	Size        uint64
	QueryFlags  uint64
	QueryAddr   uint64
	VMAStart    uint64
	VMAEnd      uint64
	VMAFlags    uint64
	VMAPageSize uint64
	VMAOffset   uint64
	Inode       uint64
	DevMajor    uint32
	DevMinor    uint32
	VMANameSize uint32
	BuildIDSize uint32
	VMANameAddr uint64
	BuildIDAddr uint64
}

// ask runs one query; ok is false when no mapping matches (ENOENT).
func (m *Maps) ask(addr, flags uint64) (Mapping, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := procmapQueryArg{
		Size:        procmapQuerySize,
		QueryFlags:  flags,
		QueryAddr:   addr,
		VMANameSize: uint32(len(m.name)),
		VMANameAddr: uint64(uintptr(unsafe.Pointer(&m.name[0]))),
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, m.f.Fd(), procmapQuery, uintptr(unsafe.Pointer(&q)))
	switch {
	case e == unix.ENOENT:
		return Mapping{}, false, nil
	case e == unix.ESRCH:
		return Mapping{}, false, ErrNoProcess // exited (or exec'd: the old memory is gone)
	case e == unix.ENAMETOOLONG:
		return Mapping{}, false, errNameTooLong
	case e != 0:
		return Mapping{}, false, fmt.Errorf("maps of process %d: PROCMAP_QUERY: %w", m.pid, e)
	}
	perms := []byte("---p")
	for i, bit := range []uint64{vmaReadable, vmaWritable, vmaExecutable} {
		if q.VMAFlags&bit != 0 {
			perms[i] = "rwx"[i]
		}
	}
	if q.VMAFlags&vmaShared != 0 {
		perms[3] = 's'
	}
	mp := Mapping{
		Start:  q.VMAStart,
		End:    q.VMAEnd,
		Perms:  string(perms),
		Offset: q.VMAOffset,
		Dev:    fmt.Sprintf("%02x:%02x", q.DevMajor, q.DevMinor),
		Inode:  q.Inode,
	}
	if n := int(q.VMANameSize); n > 0 && n <= len(m.name) {
		mp.Path = string(m.name[:n-1]) // (the size counts the NUL)
	}
	return mp, true, nil
}

// The kernel's size, exactly (neither constant may go negative).
var (
	_ [procmapQuerySize - unsafe.Sizeof(procmapQueryArg{})]byte
	_ [unsafe.Sizeof(procmapQueryArg{}) - procmapQuerySize]byte
)

// errNameTooLong: a mapping's path is longer than PATH_MAX; the kernel
// names it in the text only.
var errNameTooLong = errors.New("mapping name too long for PROCMAP_QUERY")
