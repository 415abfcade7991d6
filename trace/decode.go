// Package trace decodes the records the tracing hook sends from inside the
// target and turns them into events. The target is untrusted: every field
// is checked, nothing from it can make the decoder panic or grow without
// bound.
package trace

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lptrace/lptrace/transport"
	"github.com/lptrace/lptrace/wire"
)

// Code is a function the target reported.
type Code struct {
	Name   string // qualified name (3.11+: co_qualname; before: co_name)
	File   string
	Line   int
	Module string // the module's __name__, when known
	// ArgNames are the names of the arguments the hook's machine code
	// records (-a): the positional and keyword-only ones.
	ArgNames []string
}

// Thread is a thread the target reported.
type Thread struct {
	TID  int // native thread ID (2.7: the pthread handle)
	Name string
	seen uint64 // the batch that last had an event of it (for eviction)
	// frame is which frame the thread's next event (a resumption or
	// suspension) is of, when the hook said (an event of kind 6); 0: none.
	frame uint64
}

// Process is one traced process: the attached one, and with -f the
// children it forks.
type Process struct {
	PID, PPID int
	Version   string
	Loaded    string // how the hook got its code: "precompiled" or "compiled" (hook/load.py)
	Dropped   uint64 // events the hook could not record (its ring was full)

	clock0  int64 // the hook's clock (ns) at wall0
	wall0   time.Time
	codes   map[uint64]*Code // ids may arrive out of order (threads race)
	threads map[uint64]*Thread
	values  map[uint64]string
	types   map[uint64]string // names of the types whose objects G records show
}

// Kind is what happened.
type Kind uint8

// frameKind is the wire's event that says which frame the thread's next
// event is of; the decoder keeps it.
const frameKind = wire.EventFrame

const (
	Call      Kind = wire.EventCall
	Return    Kind = wire.EventReturn
	Exception Kind = wire.EventException // the function ended by an exception
	// Nested is time (Clock, ns) spent in calls that the hook counted
	// itself (-c kept in the program), nested directly in the thread's
	// innermost call that lptrace counts: one made before the hook's
	// machine code took over.
	Nested Kind = wire.EventNested
	// Resume is a generator or coroutine resumed (by next(), send(),
	// throw() or its event loop): no new call.
	Resume Kind = wire.EventResume
	// Suspend is one suspended (a yield, an await that waits): not its
	// end.
	Suspend Kind = wire.EventSuspend
	// Counted is what the -c table the hook keeps gained for one function
	// (Counts).
	Counted Kind = 0x80
)

func (k Kind) String() string {
	switch k {
	case Call:
		return "call"
	case Return:
		return "return"
	case Nested:
		return "nested"
	case Resume:
		return "resume"
	case Suspend:
		return "suspend"
	case Counted:
		return "counted"
	default:
		return "exception"
	}
}

// Counts is what a function's row of the -c table gained.
type Counts struct {
	Calls, Errors uint64
	Own, Total    int64 // ns
}

// Event is one call, return or exception of a Python function.
type Event struct {
	Proc   *Process
	Thread *Thread
	Code   *Code
	Kind   Kind
	Clock  int64     // ns on the target's monotonic clock (0: times not asked)
	Time   time.Time // wall time of Clock
	// Value is the arguments of a call ("a=1\tb='x'"), or the value a
	// function returned, or the exception it raised, when asked for.
	Value    string
	HasValue bool
	Counts   Counts // Counted
	// Frame tells a generator's or coroutine's frames apart (Resume,
	// Suspend), from its first start to its end, when the hook could say
	// (32 bits of its address); 0: unknown.
	Frame uint64
}

// Decoder keeps the tables of each process's functions and threads.
type Decoder struct {
	// Times and Values say what follows each event's first word, as the
	// hook was configured: a clock reading, a value id.
	Times, Values bool
	// NewProcess, if set, is called when a process starts sending.
	NewProcess func(*Process)
	// Hooked, if set, is called when the hook of a process (before 3.12)
	// has set the profile function of every thread that existed.
	Hooked func(*Process)
	// Dropped counts events lost in every process.
	Dropped uint64
	// Undefined counts events skipped because their thread or function
	// was never defined: a definition the hook lost (a signal handler of
	// the program raised while it was being queued). Never expected, but
	// no reason to end the session.
	Undefined uint64

	procs   map[int]*Process
	cur     *Process
	batches uint64
}

// forgetThreads makes room for new thread definitions: a program that
// starts a thread per request defines one for each (thread IDs are reused:
// each start is a new definition). The half that had no event for the
// longest goes; an event of one of those later counts as Undefined.
func (d *Decoder) forgetThreads(p *Process) {
	seen := make([]uint64, 0, len(p.threads))
	for _, t := range p.threads {
		seen = append(seen, t.seen)
	}
	slices.Sort(seen)
	cut := seen[len(seen)/2]
	for idx, t := range p.threads {
		if t.seen < cut || (t.seen == cut && len(p.threads) >= maxThreads) {
			delete(p.threads, idx)
		}
	}
}

// Limits on what the target may define.
const (
	maxCodes   = 1 << 22
	maxThreads = 1 << 16
	maxValues  = 1 << 16 // values of dropped events are never used: forget them
	maxTypes   = 1 << 12 // the hook's machine code knows 512 at a time
	maxProcs   = 1 << 12
)

// Processes returns the processes seen so far.
func (d *Decoder) Processes() int { return len(d.procs) }

// EachCode calls f with each function any process defined (each passed
// the hook's filters).
func (d *Decoder) EachCode(f func(*Code)) {
	for _, p := range d.procs {
		for _, c := range p.codes {
			f(c)
		}
	}
}

// Decode handles one record and returns the events it carries.
func (d *Decoder) Decode(r transport.Record, emit func(Event)) error {
	if r.Kind == wire.TraceProcess {
		pid, err := strconv.Atoi(string(r.Data))
		if err != nil || pid <= 0 {
			return fmt.Errorf("bad process record")
		}
		d.cur = d.procs[pid]
		if d.cur == nil {
			d.cur = d.process(pid)
		}
		return nil
	}
	if r.Kind == wire.TraceStarted {
		return d.started(r.Data)
	}
	p := d.cur
	if p == nil {
		return fmt.Errorf("record %q before the start record", r.Kind)
	}
	switch r.Kind {
	case wire.TraceFunction:
		f := strings.SplitN(string(r.Data), "\t", 6)
		if len(f) < 4 {
			return fmt.Errorf("bad code record")
		}
		id, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || len(p.codes) >= maxCodes {
			return fmt.Errorf("bad code id %q", f[0])
		}
		line, _ := strconv.Atoi(f[3])
		c := &Code{Name: f[1], File: f[2], Line: line}
		if len(f) >= 5 {
			c.Module = f[4]
		}
		if len(f) == 6 {
			c.ArgNames = strings.Fields(f[5])
		}
		p.codes[id] = c
	case wire.TraceThread:
		f := strings.SplitN(string(r.Data), "\t", 3)
		if len(f) != 3 {
			return fmt.Errorf("bad thread record")
		}
		idx, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return fmt.Errorf("bad thread index %q", f[0])
		}
		tid, _ := strconv.Atoi(f[1])
		if old := p.threads[idx]; old != nil && old.TID == tid && old.Name == f[2] {
			break // sent again (the hook re-sends definitions it is unsure of)
		}
		if len(p.threads) >= maxThreads {
			d.forgetThreads(p)
		}
		p.threads[idx] = &Thread{TID: tid, Name: f[2], seen: d.batches}
	case wire.TraceValue:
		id, text, ok := strings.Cut(string(r.Data), "\t")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("bad value record")
		}
		if len(p.values) >= maxValues {
			clear(p.values)
		}
		p.values[n] = text
	case wire.TraceType:
		addr, name, ok := strings.Cut(string(r.Data), "\t")
		n, err := strconv.ParseUint(addr, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("bad type record")
		}
		if len(p.types) >= maxTypes {
			clear(p.types)
		}
		p.types[n] = name
	case wire.TraceValues:
		id, text, err := argsRecord(p, r.Data)
		if err != nil {
			return err
		}
		if len(p.values) >= maxValues {
			clear(p.values)
		}
		p.values[id] = text
	case wire.TraceBatch:
		return d.batch(p, r.Data, emit)
	case wire.TraceCounts:
		return d.counted(p, r.Data, emit)
	case wire.TraceDropped:
		n, _ := strconv.ParseUint(string(r.Data), 10, 64)
		p.Dropped += n
		d.Dropped += n
	case wire.TraceHooked:
		if d.Hooked != nil && string(r.Data) == "all" {
			d.Hooked(p)
		}
	default:
		return fmt.Errorf("unknown record kind %q", r.Kind)
	}
	return nil
}

func (d *Decoder) process(pid int) *Process {
	if d.procs == nil {
		d.procs = map[int]*Process{}
	}
	p := &Process{PID: pid, codes: map[uint64]*Code{}, threads: map[uint64]*Thread{}, values: map[uint64]string{},
		types: map[uint64]string{}}
	if len(d.procs) < maxProcs {
		d.procs[pid] = p
	}
	return p
}

// started handles "pid ppid clock wall version": a process (re)starts its
// tables (a forked child inherits its parent's hook but not its ids).
func (d *Decoder) started(data []byte) error {
	f := strings.SplitN(string(data), "\t", 6)
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 || len(f) < 5 {
		return fmt.Errorf("bad start record")
	}
	p := d.process(pid)
	p.PPID, _ = strconv.Atoi(f[1])
	p.clock0, _ = strconv.ParseInt(f[2], 10, 64)
	wall, _ := strconv.ParseInt(f[3], 10, 64)
	p.wall0 = time.Unix(0, wall)
	p.Version = f[4]
	if len(f) == 6 {
		p.Loaded = f[5]
	}
	d.cur = p
	if d.NewProcess != nil {
		d.NewProcess(p)
	}
	return nil
}

func (d *Decoder) batch(p *Process, data []byte, emit func(Event)) error {
	stride := 1
	if d.Times {
		stride++
	}
	if d.Values {
		stride++
	}
	if len(data)%(8*stride) != 0 {
		return fmt.Errorf("bad batch length %d", len(data))
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8*i:]) }
	d.batches++
	var last *Thread
	for i := 0; i < len(data)/8; i += stride {
		w := word(i)
		th, code := p.threads[w>>32&0xffffff], p.codes[w&0xffffffff]
		if th != last && th != nil {
			th.seen, last = d.batches, th
		}
		kind := Kind(w >> 56)
		if kind == frameKind {
			if th != nil {
				th.frame = 1<<32 | w&0xffffffff
			}
			continue
		}
		if kind > Suspend || (kind == Nested && !d.Times) {
			return fmt.Errorf("bad event kind %d", kind)
		}
		if kind == Nested && th != nil {
			emit(Event{Proc: p, Thread: th, Kind: Nested, Clock: int64(word(i + 1))})
			continue
		}
		if th == nil || code == nil {
			d.Undefined++
			if d.Values {
				delete(p.values, word(i+stride-1)-1)
			}
			continue
		}
		e := Event{Proc: p, Thread: th, Code: code, Kind: kind}
		if kind == Resume || kind == Suspend {
			e.Frame = th.frame
		}
		th.frame = 0
		n := 1
		if d.Times {
			e.Clock = int64(word(i + n))
			e.Time = p.wall0.Add(time.Duration(e.Clock - p.clock0))
			n++
		}
		if d.Values {
			if v := word(i + n); v>>63 != 0 {
				e.Value, e.HasValue = inlineValue(v)
			} else if v != 0 {
				e.Value, e.HasValue = p.values[v-1]
				delete(p.values, v-1)
			}
		}
		emit(e)
	}
	return nil
}

// otherCode stands for the functions past the -c table's last id, which
// share its last entry.
var otherCode = &Code{Name: fmt.Sprintf("(functions past the %dth)", transport.CountedIDs-1)}

func (d *Decoder) counted(p *Process, data []byte, emit func(Event)) error {
	if len(data)%40 != 0 {
		return fmt.Errorf("bad counts length %d", len(data))
	}
	for ; len(data) > 0; data = data[40:] {
		w := func(k int) uint64 { return binary.LittleEndian.Uint64(data[8*k:]) }
		id := w(0)
		code := p.codes[id]
		if id >= transport.CountedIDs-1 {
			code = otherCode
		}
		if code == nil {
			d.Undefined++
			continue
		}
		emit(Event{Proc: p, Code: code, Kind: Counted,
			Counts: Counts{Calls: w(1), Own: int64(w(2)), Total: int64(w(3)), Errors: w(4)}})
	}
	return nil
}

// inlineValue is the text of a value word that holds its value itself
// (hook/asm/native_values_amd64.s: a small builtin the machine code
// recorded), as repr() writes it.
func inlineValue(v uint64) (string, bool) {
	switch v >> 56 & 0x7f {
	case 1:
		return "None", true
	case 2:
		return "False", true
	case 3:
		return "True", true
	case 4:
		return strconv.FormatInt(int64(v<<8)>>8, 10), true
	}
	return "", false
}
