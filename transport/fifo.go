// Package transport carries what the payload inside the target sends back to
// lptrace: a FIFO in a fresh private directory of the target's own file
// system, read by lptrace.
//
// Guarantees: the directory has a random name and mode 0700, and belongs to
// the target's user, so no other user can open, replace or read the FIFO; it
// is created through /proc/PID/root, so a target in another mount namespace
// (a container, a private /tmp) sees it at Channel.TargetPath; it is removed
// as soon as the target has opened it, and in any case by Close.
package transport

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lptrace/lptrace/wire"
)

// Pipe is one of lptrace's FIFOs (or ring files) as the payload must find
// it: its path in the target's mount namespace and the identity (device,
// inode, owner, change time) the payload checks after opening it.
type Pipe struct {
	Path     string
	Dev, Ino uint64
	UID      int
	Ctime    int64 // change time, in nanoseconds
}

// MaxRecord bounds one record from the target: the target is untrusted.
const MaxRecord = 16 << 20

// ErrMalformed means the target sent bytes that are not a valid record.
var ErrMalformed = errors.New("malformed record from the target")

// Channel is a FIFO from the target to lptrace.
type Channel struct {
	TargetPath string // the FIFO's path as the target sees it
	// Dev and Ino identify the FIFO: the payload checks them after opening
	// the path, so that a FIFO planted at the same path after lptrace
	// removed its own never receives anything.
	Dev, Ino uint64
	UID      int // owner of the FIFO
	Ctime    int64
	hostDir  string
	// The temporary directory and ours, held open so that they can be
	// cleaned up even after the target exited and /proc/PID/root vanished.
	parent, dir *os.File
	refused     string        // see Refused
	ring        *Ring         // when AddRing made one
	closed      chan struct{} // closed by Close: Stream's sends give up
	closeOnce   sync.Once
	// OnEnd, if set, is called by Stream as soon as the pipe ends, before
	// anything else is done (a process that died: its exit status is
	// readable a moment only).
	OnEnd func()
	name  string
	swept chan struct{} // closed once removeStale is done
	r     *os.File
	mu    sync.Mutex // guards keep and the names: Stream's goroutine drops them
	keep  *os.File   // a write end held until the target opens its own
	in    *os.File   // lptrace -> target, when AddInput made one
	br    *bufio.Reader
}

// Places tried for the private directory, in the target's file system.
var tempDirs = []string{"/tmp", "/dev/shm", "/var/tmp"}

// Create makes the FIFO for process pid, owned by uid/gid (the target's
// effective user, so that it may open it when it is not root).
func Create(pid, uid, gid int, pipeSize int) (*Channel, error) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	var errs []string
	for _, d := range tempDirs {
		c, err := create(root, d, uid, gid)
		if err == nil {
			c.setPipeSize(pipeSize)
			return c, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", d, err))
	}
	return nil, fmt.Errorf("cannot create a pipe in the target's file system (%v)", errs)
}

func create(root, dir string, uid, gid int) (*Channel, error) {
	// Everything below goes through directory descriptors (mkdirat,
	// mknodat, openat, never following a symbolic link), so that a target
	// that swaps its /tmp, or another user racing on names, cannot steer
	// lptrace (root) to another place.
	parent, err := openDir(nil, filepath.Join(root, dir))
	if err != nil {
		return nil, err
	}
	// Left by killed lptraces: cleared meanwhile (a big /tmp takes a while
	// to read, and the attach waits for this pipe).
	swept := make(chan struct{})
	if d, err := openDir(parent, "."); err == nil {
		go func() {
			removeStale(d)
			close(swept)
		}()
	} else {
		close(swept)
	}
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		parent.Close()
		return nil, err
	}
	// lptrace's PID in the name lets a later run recognise the directory of
	// an lptrace that was killed before the target could remove it; the
	// random part keeps the name unpredictable.
	name := fmt.Sprintf("lptrace-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	// mkdirat fails if anything already exists there: nothing planted is
	// ever used.
	if err := unix.Mkdirat(int(parent.Fd()), name, 0o700); err != nil {
		parent.Close()
		return nil, err
	}
	c := &Channel{TargetPath: dir + "/" + name + "/pipe", hostDir: filepath.Join(root, dir, name), parent: parent, name: name, swept: swept,
		closed: make(chan struct{})}
	fail := func(err error) (*Channel, error) {
		c.Close()
		return nil, err
	}
	if c.dir, err = openDir(parent, name); err != nil {
		unlinkAt(parent, name, unix.AT_REMOVEDIR)
		parent.Close()
		return nil, err
	}
	dfd := int(c.dir.Fd())
	if err := unix.Mknodat(dfd, "pipe", unix.S_IFIFO|0o600, 0); err != nil {
		return fail(err)
	}
	if os.Geteuid() == 0 && uid != 0 {
		if err := unix.Fchownat(dfd, "pipe", uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(err)
		}
		if err := unix.Fchown(dfd, uid, gid); err != nil {
			return fail(err)
		}
	}
	// Non-blocking opens: the read end first (never blocks), then our own
	// write end so that reads wait for data instead of seeing end-of-file
	// before the target has opened the FIFO.
	if c.r, err = openAt(c.dir, "pipe", os.O_RDONLY); err != nil {
		return fail(err)
	}
	if c.keep, err = openAt(c.dir, "pipe", os.O_WRONLY); err != nil {
		return fail(err)
	}
	var fst unix.Stat_t
	if err := unix.Fstat(int(c.r.Fd()), &fst); err != nil {
		return fail(err)
	}
	if fst.Mode&unix.S_IFMT != unix.S_IFIFO {
		return fail(errors.New("not our FIFO"))
	}
	c.Dev, c.Ino, c.UID = uint64(fst.Dev), uint64(fst.Ino), int(fst.Uid)
	c.Ctime = fst.Ctim.Sec*1e9 + fst.Ctim.Nsec
	c.br = bufio.NewReaderSize(c.r, 256<<10)
	return c, nil
}

// openDir opens a directory (relative to dir when not nil) without
// following a symbolic link.
func openDir(dir *os.File, name string) (*os.File, error) {
	fd := unix.AT_FDCWD
	if dir != nil {
		fd = int(dir.Fd())
	}
	nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// openAt opens a FIFO in dir, non-blocking, without following a link.
func openAt(dir *os.File, name string, mode int) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, mode|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// EventPipeSize is the capacity asked for the pipe of a trace: 4 MiB hold
// about 80 ms of events at 6 M/s, the fastest the hook makes them (3.12+),
// so that a pause of the reader (a busy machine) drops nothing. Without
// CAP_SYS_RESOURCE the kernel allows 1 MiB (fs.pipe-max-size).
const EventPipeSize = 4 << 20

// setPipeSize raises the pipe's capacity (F_SETPIPE_SZ) to n bytes, or
// to the largest size allowed below that (without CAP_SYS_RESOURCE,
// fs.pipe-max-size: 1 MiB by default); a smaller pipe only means more
// events dropped under load, so failure is not an error.
func (c *Channel) setPipeSize(n int) {
	sc, err := c.r.SyscallConn()
	if err != nil {
		return
	}
	sc.Control(func(fd uintptr) {
		for ; n >= 1<<16; n /= 2 {
			if _, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, n); err == nil {
				return
			}
		}
	})
}

// unlink removes the FIFO and its directory from the file system; the open
// ends keep working. c.mu must be held.
func (c *Channel) unlink() {
	if c.hostDir == "" {
		return
	}
	if c.dir != nil {
		unlinkAt(c.dir, "pipe", 0)
		unlinkAt(c.dir, "in", 0)
		unlinkAt(c.dir, "ring", 0)
	}
	if c.parent != nil {
		unlinkAt(c.parent, c.name, unix.AT_REMOVEDIR)
	}
	c.hostDir = ""
}

// unlinkAt removes name relative to an open directory (unlinkat(2)).
func unlinkAt(dir *os.File, name string, flags int) error {
	return unix.Unlinkat(int(dir.Fd()), name, flags)
}

// TargetOpened is called when the first record arrived: the FIFO can leave
// the file system, and our own write end can go so that the end of the
// target's writes reads as end-of-file.
func (c *Channel) TargetOpened() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unlink()
	if c.keep != nil {
		c.keep.Close()
		c.keep = nil
	}
}

// AddInput makes a second FIFO in the channel's directory, for lptrace to
// write to the target (a pdb session's commands), with the same
// protections. lptrace's end is opened read-write: it never blocks, and
// the payload's read end sees end-of-file only when lptrace is gone.
func (c *Channel) AddInput(uid, gid int) (io.Writer, Pipe, error) {
	dfd := int(c.dir.Fd())
	if err := unix.Mknodat(dfd, "in", unix.S_IFIFO|0o600, 0); err != nil {
		return nil, Pipe{}, err
	}
	if os.Geteuid() == 0 && uid != 0 {
		if err := unix.Fchownat(dfd, "in", uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, Pipe{}, err
		}
	}
	f, err := openAt(c.dir, "in", os.O_RDWR)
	if err != nil {
		return nil, Pipe{}, err
	}
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFIFO {
		f.Close()
		return nil, Pipe{}, errors.New("not our FIFO")
	}
	c.in = f
	p := Pipe{Path: c.TargetPath[:len(c.TargetPath)-len("pipe")] + "in", Dev: uint64(fst.Dev), Ino: uint64(fst.Ino),
		UID: int(fst.Uid), Ctime: fst.Ctim.Sec*1e9 + fst.Ctim.Nsec}
	return f, p, nil
}

// Record is one message from the payload.
type Record struct {
	Kind byte
	Data []byte
}

// SetDeadline bounds the next reads.
func (c *Channel) SetDeadline(t time.Time) error { return c.r.SetReadDeadline(t) }

// Read returns the next record. io.EOF means the target closed its end.
func (c *Channel) Read() (Record, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Record{}, ErrMalformed
		}
		return Record{}, err
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > MaxRecord {
		return Record{}, fmt.Errorf("%w: length %d", ErrMalformed, n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Record{}, ErrMalformed
		}
		return Record{}, err
	}
	return Record{hdr[0], data}, nil
}

// Close closes both ends and removes anything left in the file system.
func (c *Channel) Close() error {
	c.closeOnce.Do(func() {
		if c.closed != nil {
			close(c.closed)
		}
	})
	c.mu.Lock()
	c.unlink()
	if c.keep != nil {
		c.keep.Close()
		c.keep = nil
	}
	c.mu.Unlock()
	if c.in != nil {
		c.in.Close()
	}
	if c.ring != nil {
		c.ring.Close()
	}
	if c.r != nil {
		c.r.Close()
	}
	for _, f := range []*os.File{c.dir, c.parent} {
		if f != nil {
			f.Close()
		}
	}
	return nil
}

// mtimeAt is the modification time of directory name in dir (fstat of
// the opened directory: no path lookup from our working directory).
func mtimeAt(dir *os.File, name string) (time.Time, error) {
	d, err := openDir(dir, name)
	if err != nil {
		return time.Time{}, err
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// removeStale deletes directories left by lptrace processes that were
// killed (SIGKILL) before their target opened the FIFO: those whose lptrace
// is gone and that are more than 10 seconds old. Only our own kind of entry
// is touched, through directory descriptors, never through a link. It
// closes parent.
func removeStale(parent *os.File) {
	defer parent.Close()
	dir, err := openDir(parent, ".")
	if err != nil {
		return
	}
	ents, err := dir.ReadDir(-1)
	dir.Close()
	if err != nil {
		return
	}
	for _, e := range ents {
		var pid int
		var rest string
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "lptrace-") {
			continue
		}
		if n, _ := fmt.Sscanf(e.Name(), "lptrace-%d-%s", &pid, &rest); n != 2 || len(rest) != 24 {
			continue
		}
		// Not e.Info(): it would look the name up from our working
		// directory, not from the directory descriptor.
		mtime, err := mtimeAt(parent, e.Name())
		if err != nil || time.Since(mtime) < 10*time.Second {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), "lptrace") {
			continue
		}
		if d, err := openDir(parent, e.Name()); err == nil {
			for _, name := range []string{"pipe", "in", "ring"} {
				unlinkAt(d, name, 0)
			}
			d.Close()
		}
		unlinkAt(parent, e.Name(), unix.AT_REMOVEDIR)
	}
}

// Refused is why the payload refused to start, from its "R" record (once
// started is closed), or "".
func (c *Channel) Refused() string { return c.refused }

// Pipe is the FIFO as the payload must find it.
func (c *Channel) Pipe() Pipe {
	return Pipe{Path: c.TargetPath, Dev: c.Dev, Ino: c.Ino, UID: c.UID, Ctime: c.Ctime}
}

// Item is a record, or the error that ended the stream (io.EOF when the
// target closed its end).
type Item struct {
	Rec Record
	Err error
}

// Stream reads records in a goroutine until an error, which comes last:
// records and the end travel on one channel so that no record is overtaken
// by the end of the stream. started is closed at the first "S" record,
// which may arrive while the injected call that sends it is still running,
// or at an "R" record, the hook's refusal to start (see Refused);
// the target has then opened the FIFO, so our own write end goes (the end
// of the target's writes, at its exit or exec, then reads as end-of-file).
//
// With a ring (AddRing), what the hook wrote there comes in the same
// stream: read at each of the hook's kicks ("K" records, not passed on),
// every 50 ms without one, and to its end once the pipe ends (the hook
// left, or its process died: what it recorded before is all there).
func (c *Channel) Stream() (items <-chan Item, started <-chan struct{}) {
	ch := make(chan Item, 256)
	st := make(chan struct{})
	send := func(r Record) {
		select {
		case ch <- Item{Rec: r}:
		case <-c.closed:
		}
	}
	// The ring is read only once the consumer has taken nearly all that
	// was handed on before: a read of the ring can be megabytes, and a
	// consumer that falls behind (its own output blocked) would otherwise
	// have hundreds of them queued. Meanwhile the ring is the buffer, and
	// the hook counts what it drops once the ring is full.
	room := func() bool {
		for len(ch) > 1 {
			select {
			case <-c.closed:
				return false
			case <-time.After(time.Millisecond):
			}
		}
		return true
	}
	// The periodic read, once the hook started: its records come after
	// the start record.
	stopPolling, polled := make(chan struct{}), make(chan struct{})
	poll := func() {
		defer close(polled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopPolling:
				return
			case <-tick.C:
				if room() {
					c.ring.Drain(send)
				}
			}
		}
	}
	go func() {
		first := true
		for {
			r, err := c.Read()
			if first && err == nil && (r.Kind == wire.TraceStarted || r.Kind == wire.TraceRefused) {
				if r.Kind == wire.TraceRefused {
					c.refused = string(r.Data)
				}
				c.TargetOpened()
				close(st)
				first = false
				if c.ring != nil && r.Kind == wire.TraceStarted {
					ch <- Item{Rec: r}
					go poll()
					continue
				}
			}
			if c.ring != nil && err == nil && r.Kind == wire.TraceKick {
				if room() {
					c.ring.Drain(send)
				}
				continue
			}
			if err != nil && c.OnEnd != nil {
				c.OnEnd()
			}
			if c.ring != nil && err != nil && !first {
				close(stopPolling)
				<-polled
				c.ring.Drain(send) // to its end: all the writers are gone
			}
			ch <- Item{r, err}
			if err != nil {
				return
			}
		}
	}()
	return ch, st
}
