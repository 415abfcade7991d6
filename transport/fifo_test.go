package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A channel to our own process: private directory, FIFO, records, cleanup.
func TestChannel(t *testing.T) {
	c, err := Create(os.Getpid(), os.Geteuid(), os.Getegid(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := filepath.Dir(c.TargetPath)
	if !strings.HasPrefix(filepath.Base(dir), "lptrace-") {
		t.Errorf("unexpected directory %s", dir)
	}
	st, err := os.Lstat(dir)
	if err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Fatalf("directory %s: %v %v", dir, st.Mode(), err)
	}
	fst, err := os.Lstat(c.TargetPath)
	if err != nil || fst.Mode()&os.ModeNamedPipe == 0 || fst.Mode().Perm() != 0o600 {
		t.Fatalf("pipe %s: %v %v", c.TargetPath, fst.Mode(), err)
	}

	w, err := os.OpenFile(c.TargetPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.TargetOpened()
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("directory still there after TargetOpened: %v", err)
	}
	write := func(kind byte, data string) {
		var hdr [5]byte
		hdr[0] = kind
		binary.LittleEndian.PutUint32(hdr[1:], uint32(len(data)))
		w.Write(append(hdr[:], data...))
	}
	write('O', "hello")
	write('X', "")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []Record{{'O', []byte("hello")}, {'X', []byte{}}} {
		r, err := c.Read()
		if err != nil || r.Kind != want.Kind || string(r.Data) != string(want.Data) {
			t.Fatalf("read %v %q, %v; want %c %q", r.Kind, r.Data, err, want.Kind, want.Data)
		}
	}
	// A length beyond the limit is refused, not allocated.
	var hdr [5]byte
	hdr[0] = 'O'
	binary.LittleEndian.PutUint32(hdr[1:], MaxRecord+1)
	w.Write(hdr[:])
	if _, err := c.Read(); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized record: %v", err)
	}
	w.Close()
	if _, err := c.Read(); err != io.EOF && !errors.Is(err, ErrMalformed) {
		t.Errorf("after the writer closed: %v", err)
	}
}

// Close removes the directory even if the target never opened the FIFO.
func TestCloseRemoves(t *testing.T) {
	c, err := Create(os.Getpid(), os.Geteuid(), os.Getegid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(c.TargetPath)
	c.Close()
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", dir, err)
	}
}

// A directory left by a killed lptrace (its PID gone, older than 10 s) is
// removed by the next run; a fresh one, or another name, is not.
func TestRemoveStale(t *testing.T) {
	root := t.TempDir()
	dead := 1 << 22 // above pid_max: no such process
	old := filepath.Join(root, fmt.Sprintf("lptrace-%d-%s", dead, strings.Repeat("a", 24)))
	fresh := filepath.Join(root, fmt.Sprintf("lptrace-%d-%s", dead, strings.Repeat("b", 24)))
	other := filepath.Join(root, "lptrace-notours")
	for _, d := range []string{old, fresh, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(d, "pipe"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Minute)
	os.Chtimes(old, past, past)
	os.Chtimes(other, past, past)
	parent, err := openDir(nil, root)
	if err != nil {
		t.Fatal(err)
	}
	removeStale(parent) // the working directory is elsewhere; it closes parent
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale directory kept: %v", err)
	}
	for _, d := range []string{fresh, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}

// Whatever another user planted in a target's temporary directories is
// never followed: a /tmp that is a symbolic link is not used (the next
// place is), a stale-looking directory holding a link to elsewhere loses
// only the link, and nothing is created outside the chosen directory.
func TestCreateNeverFollowsLinks(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, "tmp")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, "dev", "shm"), nil, 0o644) // a file, not a directory
	os.MkdirAll(filepath.Join(root, "var", "tmp"), 0o1777)
	// A planted directory with the name of a killed lptrace's, old enough
	// to be removed, whose "pipe" is a link to a file that must survive.
	victim := filepath.Join(elsewhere, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	planted := filepath.Join(root, "var", "tmp", fmt.Sprintf("lptrace-%d-%s", 1<<22, strings.Repeat("c", 24)))
	os.Mkdir(planted, 0o755)
	os.Symlink(victim, filepath.Join(planted, "pipe"))
	past := time.Now().Add(-time.Minute)
	os.Chtimes(planted, past, past)

	var c *Channel
	var errs []string
	for _, d := range tempDirs {
		ch, err := create(root, d, os.Getuid(), os.Getgid())
		if err == nil {
			c = ch
			break
		}
		errs = append(errs, d+": "+err.Error())
	}
	if c == nil {
		t.Fatalf("no place found: %v", errs)
	}
	defer c.Close()
	<-c.swept
	if !strings.HasPrefix(c.TargetPath, "/var/tmp/lptrace-") {
		t.Errorf("FIFO at %s, want it in /var/tmp (the others are a link and a file)", c.TargetPath)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 1 {
		t.Errorf("something was created through the link: %v", ents)
	}
	if data, err := os.ReadFile(victim); err != nil || string(data) != "keep" {
		t.Errorf("the link's target was touched: %q %v", data, err)
	}
	if _, err := os.Lstat(filepath.Join(planted, "pipe")); !os.IsNotExist(err) {
		t.Errorf("the planted link is still there: %v", err)
	}
	st, err := os.Stat(filepath.Join(root, c.TargetPath[1:len(c.TargetPath)-len("/pipe")]))
	if err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o700 {
		t.Errorf("private directory has mode %v", st.Mode())
	}
}
