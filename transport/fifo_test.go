package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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
