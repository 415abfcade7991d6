package proc

import (
	"os"
	"testing"
	"unsafe"
)

// On the test process itself: the file and process_vm_readv/writev read
// and write the same memory; a transfer that would go past a mapping says
// so.
func TestMem(t *testing.T) {
	buf := []byte("lptrace reads this")
	addr := uint64(uintptr(unsafe.Pointer(&buf[0])))
	for _, m := range []*Mem{OpenMem(os.Getpid(), true), {pid: os.Getpid()}} {
		got := make([]byte, len(buf))
		if err := m.ReadThrough(os.Getpid(), addr, got); err != nil || string(got) != string(buf) {
			t.Fatalf("opened %v: read %q, %v", m.Opened(), got, err)
		}
		if err := m.WriteThrough(os.Getpid(), addr, []byte("LP")); err != nil || string(buf[:2]) != "LP" {
			t.Fatalf("opened %v: write: %q, %v", m.Opened(), buf, err)
		}
		copy(buf, "lp")
		if n, err := m.ReadAt(got[:4], int64(addr)); n != 4 || err != nil || string(got[:4]) != "lptr" {
			t.Errorf("opened %v: ReadAt: %d %v %q", m.Opened(), n, err, got[:4])
		}
		if err := m.ReadThrough(os.Getpid(), 8, got); err == nil {
			t.Errorf("opened %v: read at 8 succeeded", m.Opened())
		}
		m.Close()
	}
	var none *Mem // (not opened: through the thread given)
	got := make([]byte, 4)
	if err := none.ReadThrough(os.Getpid(), addr, got); err != nil || string(got) != "lptr" || none.Opened() || none.Close() != nil {
		t.Errorf("nil Mem: %q %v", got, err)
	}
	if err := VMRead(os.Getpid(), addr, got); err != nil || string(got) != "lptr" {
		t.Errorf("VMRead: %q %v", got, err)
	}
}
