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
	defer parent.Close()
	removeStale(parent) // the working directory is elsewhere
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale directory kept: %v", err)
	}
	for _, d := range []string{fresh, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}
