package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lptrace/lptrace/wire"
)

// Ring is memory that lptrace shares with the tracing hook: the hook writes
// its records there (definitions, values) and its events, as it makes
// them, instead of keeping them until its timer thread writes them into
// the pipe. What the program recorded before it died (os._exit, a fatal
// signal, SIGKILL, a crash) is therefore still there for lptrace to read:
// the memory is lptrace's too. The pipe stays, for the hook's start record,
// its kicks ("K": there is something new) and for each side to see the
// other go.
//
// It is a file in the channel's private directory, removed with it once
// the hook has mapped it, and allocated whole when made (a write into a
// page the file system cannot provide would kill the program with SIGBUS).
// It holds slots of SlotSize bytes: slot 0 for the traced process, the
// others for the children it forks, when lptrace follows them (each child
// gets one from its parent at the fork, while there are). A slot's layout
// is in hook/native.py; the offsets below are the same.
type Ring struct {
	mu sync.Mutex // one reader of the memory at a time: the kicks', the periodic one, Close
	// order is held by a Drain from its read to the end of its handing
	// on: two Drains (a kick's, the periodic one) hand on in the order
	// they read. Close takes only mu: it never waits for a slow reader.
	order sync.Mutex
	f     *os.File
	mem   []byte
	slots []ringSlot
}

// SlotSize is the size of one process's part of the ring file.
const SlotSize = 0x601000

// Offsets in a slot (hook/native.py).
const (
	offEvHead      = 0x0
	offEvTail      = 0x8
	offEvDropped   = 0x10
	offMetaHead    = 0x18
	offMetaTail    = 0x20
	offMetaDropped = 0x28
	offPID         = 0x30
	offStride      = 0x38
	offCounted     = 0x40
	offEvents      = 0x1000
	evWords        = 1 << 19
	offMeta        = 0x401000
	metaBytes      = 1 << 20
	offCounts      = 0x501000
	// CountedIDs is how many function ids the -c table in a slot holds;
	// ids from CountedIDs-1 on share its last entry.
	CountedIDs = 1 << 15
)

// ringSlot is what lptrace keeps of a slot between two reads.
type ringSlot struct {
	dropped uint64   // the counts already reported
	broken  bool     // it held garbage: read no more
	counts  []uint64 // the -c table as last read (4 words per function id)
}

// AddRing makes the ring file, of nslots slots, in the channel's
// directory, owned by uid/gid, and maps it. The hook finds it at
// Ring.Pipe().Path (the file's identity is checked as the FIFO's).
func (c *Channel) AddRing(uid, gid, nslots int) (*Ring, Pipe, error) {
	dfd := int(c.dir.Fd())
	fd, err := unix.Openat(dfd, "ring", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, Pipe{}, err
	}
	f := os.NewFile(uintptr(fd), "ring")
	fail := func(err error) (*Ring, Pipe, error) {
		f.Close()
		unlinkAt(c.dir, "ring", 0)
		return nil, Pipe{}, err
	}
	size := int64(nslots) * SlotSize
	if err := unix.Fallocate(fd, 0, 0, size); err != nil {
		return fail(fmt.Errorf("allocate %d MiB for the ring: %w", size>>20, err))
	}
	if os.Geteuid() == 0 && uid != 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fail(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fail(errors.New("not our ring file"))
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	r := &Ring{f: f, mem: mem, slots: make([]ringSlot, nslots)}
	p := Pipe{Path: c.TargetPath[:len(c.TargetPath)-len("pipe")] + "ring", Dev: uint64(st.Dev), Ino: uint64(st.Ino),
		UID: int(st.Uid), Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
	c.ring = r
	return r, p, nil
}

// Slots is how many processes the ring holds.
func (r *Ring) Slots() int { return len(r.slots) }

func (r *Ring) word(slot int, off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&r.mem[slot*SlotSize+off]))
}

// Drain reads what every slot holds, as the records the hook would have
// written into the pipe: for each process, a P record (its PID), its
// records (definitions first: an event needs the ones made before it),
// D if it dropped some, and its events as one B record. The target is
// untrusted: a slot with a record that does not fit is read no more.
func (r *Ring) Drain(emit func(Record)) {
	// Read under the lock, handed on after it: emit may block (a slow
	// reader), and Close must never wait for it.
	var recs []Record
	r.order.Lock()
	defer r.order.Unlock()
	r.mu.Lock()
	if r.mem != nil {
		for i := range r.slots {
			r.drain(i, func(rec Record) { recs = append(recs, rec) })
		}
	}
	r.mu.Unlock()
	for _, rec := range recs {
		emit(rec)
	}
}

func (r *Ring) drain(i int, emit func(Record)) {
	s := &r.slots[i]
	pid := atomic.LoadUint64(r.word(i, offPID))
	if pid == 0 || pid > 1<<22 || s.broken {
		return
	}
	base := i * SlotSize
	// How far the -c table is defined first, the events' head next, then
	// the records': every definition a counted function or an event needs
	// was written before them (TSO: seen in that order). (Read after the
	// records' head, a function defined meanwhile had its counts read and
	// its definition left for the next read: lptrace dropped them.)
	counted := atomic.LoadUint64(r.word(i, offCounted))
	evHead := atomic.LoadUint64(r.word(i, offEvHead))
	metaHead := atomic.LoadUint64(r.word(i, offMetaHead))
	evTail := atomic.LoadUint64(r.word(i, offEvTail))
	metaTail := atomic.LoadUint64(r.word(i, offMetaTail))
	stride := atomic.LoadUint64(r.word(i, offStride))
	if metaHead-metaTail > metaBytes || evHead-evTail > evWords || stride == 0 || stride > 3 {
		s.broken = true
		return
	}
	said := false
	emit0 := emit
	emit = func(rec Record) {
		if !said {
			emit0(Record{'P', []byte(fmt.Sprint(pid))})
			said = true
		}
		emit0(rec)
	}
	meta := make([]byte, metaHead-metaTail)
	for k := range meta {
		meta[k] = r.mem[base+offMeta+int((metaTail+uint64(k))&(metaBytes-1))]
	}
	for len(meta) > 0 {
		if len(meta) < 5 {
			s.broken = true
			return
		}
		n := binary.LittleEndian.Uint32(meta[1:5])
		if uint64(n) > uint64(len(meta)-5) {
			s.broken = true
			return
		}
		emit(Record{meta[0], meta[5 : 5+n]})
		meta = meta[5+n:]
	}
	atomic.StoreUint64(r.word(i, offMetaTail), metaHead)
	dropped := atomic.LoadUint64(r.word(i, offEvDropped)) + atomic.LoadUint64(r.word(i, offMetaDropped))
	if dropped > s.dropped {
		emit(Record{'D', []byte(fmt.Sprint(dropped - s.dropped))})
		s.dropped = dropped
	}
	if n := (evHead - evTail) / stride * stride; n > 0 { // whole events
		ev := make([]byte, 8*n)
		for k := uint64(0); k < n; k++ {
			w := atomic.LoadUint64(r.word(i, offEvents+8*int((evTail+k)&(evWords-1))))
			binary.LittleEndian.PutUint64(ev[8*k:], w)
		}
		atomic.StoreUint64(r.word(i, offEvTail), evTail+n)
		emit(Record{'B', ev})
	}
	r.counts(i, counted, emit)
}

// counts hands on what the -c table that the hook keeps in the program
// (a session of -c alone) gained since the last read, as an A record, for
// the first n functions (those defined when the read began):
// per function id whose counts grew, five little-endian words (id, calls,
// own ns, total ns, exceptions), the growth. After the events: a return
// that lptrace counts itself (one the hook could not) comes first.
func (r *Ring) counts(i int, n uint64, emit func(Record)) {
	s := &r.slots[i]
	if n == 0 || s.broken {
		return
	}
	n = min(n, CountedIDs)
	if uint64(len(s.counts)) < 4*n {
		s.counts = append(s.counts, make([]uint64, 4*n-uint64(len(s.counts)))...)
	}
	var out []byte
	var delta [4]uint64
	for id := uint64(0); id < n; id++ {
		changed := false
		for k := range delta {
			v := atomic.LoadUint64(r.word(i, offCounts+int(32*id)+8*k))
			delta[k] = v - s.counts[4*id+uint64(k)]
			s.counts[4*id+uint64(k)] = v
			changed = changed || delta[k] != 0
		}
		if changed {
			out = binary.LittleEndian.AppendUint64(out, id)
			for _, d := range delta {
				out = binary.LittleEndian.AppendUint64(out, d)
			}
		}
	}
	if len(out) > 0 {
		emit(Record{wire.TraceCounts, out})
	}
}

// Close unmaps the ring.
func (r *Ring) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	r.f.Close()
}
