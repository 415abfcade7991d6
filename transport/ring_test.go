package transport

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Events written by a busy writer (as the hook's) while two readers drain
// at once (lptrace's kick-driven and periodic reads) come out whole and in
// the order they were written: each read is handed on before the next.
func TestRingDrainOrder(t *testing.T) {
	c, err := Create(os.Getpid(), os.Geteuid(), os.Getegid(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, _, err := c.AddRing(os.Geteuid(), os.Getegid(), 1)
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint64(r.word(0, offStride), 1)
	atomic.StoreUint64(r.word(0, offPID), uint64(os.Getpid()))
	const total = 3 * evWords
	done := make(chan struct{})
	go func() { // the writer: waits for room, never drops
		defer close(done)
		for n := uint64(0); n < total; n++ {
			for n-atomic.LoadUint64(r.word(0, offEvTail)) >= evWords {
			}
			atomic.StoreUint64(r.word(0, offEvents+8*int(n&(evWords-1))), n)
			atomic.StoreUint64(r.word(0, offEvHead), n+1)
		}
	}()
	var mu sync.Mutex
	var next uint64
	bad := 0
	collect := func(rec Record) {
		if rec.Kind != 'B' {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for k := 0; k+8 <= len(rec.Data); k += 8 {
			if w := binary.LittleEndian.Uint64(rec.Data[k:]); w != next {
				bad++
				next = w
			}
			next++
		}
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					r.Drain(collect)
					return
				default:
					r.Drain(collect)
				}
			}
		}()
	}
	wg.Wait()
	r.Drain(collect)
	if bad > 0 || next != total {
		t.Errorf("%d events out of order; the last read was %d of %d", bad, next, total)
	}
}
