// Package trace decodes the records the tracing hook sends from inside the
// target and turns them into events. The target is untrusted: every field
// is checked, nothing from it can make the decoder panic or grow without
// bound.
package trace

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/lptrace/lptrace/transport"
)

// Code is a function the target reported.
type Code struct {
	Name string
	File string
	Line int
}

// Thread is a thread the target reported.
type Thread struct {
	TID  int // native thread ID (2.7: the pthread handle)
	Name string
}

// Event is one Python function call.
type Event struct {
	Thread *Thread
	Code   *Code
}

// Decoder keeps the tables of code objects and threads.
type Decoder struct {
	codes   map[uint64]*Code // ids may arrive out of order (threads race)
	threads map[uint64]*Thread
	// Started holds the "S" record: pid and version.
	PID     int
	Version string
	// Dropped counts events the hook could not send (pipe full).
	Dropped uint64
}

// Limits on what the target may define.
const (
	maxCodes   = 1 << 22
	maxThreads = 1 << 16
)

// Decode handles one record and returns the events it carries.
func (d *Decoder) Decode(r transport.Record, emit func(Event)) error {
	switch r.Kind {
	case 'S':
		f := strings.SplitN(string(r.Data), "\t", 2)
		d.PID, _ = strconv.Atoi(f[0])
		if len(f) > 1 {
			d.Version = f[1]
		}
	case 'C':
		f := strings.SplitN(string(r.Data), "\t", 4)
		if len(f) != 4 {
			return fmt.Errorf("bad code record")
		}
		id, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || len(d.codes) >= maxCodes {
			return fmt.Errorf("bad code id %q", f[0])
		}
		line, _ := strconv.Atoi(f[3])
		if d.codes == nil {
			d.codes = map[uint64]*Code{}
		}
		d.codes[id] = &Code{Name: f[1], File: f[2], Line: line}
	case 'T':
		f := strings.SplitN(string(r.Data), "\t", 3)
		if len(f) != 3 {
			return fmt.Errorf("bad thread record")
		}
		idx, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || len(d.threads) >= maxThreads {
			return fmt.Errorf("bad thread index %q", f[0])
		}
		tid, _ := strconv.Atoi(f[1])
		if d.threads == nil {
			d.threads = map[uint64]*Thread{}
		}
		d.threads[idx] = &Thread{TID: tid, Name: f[2]}
	case 'B':
		if len(r.Data)%8 != 0 {
			return fmt.Errorf("bad batch length %d", len(r.Data))
		}
		for i := 0; i < len(r.Data); i += 8 {
			v := binary.LittleEndian.Uint64(r.Data[i:])
			th, code := d.threads[v>>32], d.codes[v&0xffffffff]
			if th == nil || code == nil {
				return fmt.Errorf("event refers to an unknown thread or function")
			}
			emit(Event{Thread: th, Code: code})
		}
	case 'D':
		n, _ := strconv.ParseUint(string(r.Data), 10, 64)
		d.Dropped += n
	default:
		return fmt.Errorf("unknown record kind %q", r.Kind)
	}
	return nil
}

// Threads returns the number of threads seen.
func (d *Decoder) Threads() int { return len(d.threads) }
