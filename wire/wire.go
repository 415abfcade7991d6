// Package wire names what lptrace's payloads write to it: records of a
// kind byte, a 4-byte little-endian length and the data (the payloads'
// sources in hook/ say what each holds), and, in a trace's batches, events
// of 64-bit words. A kind means something only within its payload: 'T' is
// a thread in a trace and in a stack, with other fields.
package wire

// The tracing hook's records (hook/trace.py, hook/native.py).
const (
	TraceStarted  byte = 'S' // "pid<TAB>ppid<TAB>clock ns<TAB>wall ns<TAB>sys.version<TAB>how"
	TraceRefused  byte = 'R' // instead of TraceStarted: why the hook refused to start
	TraceFunction byte = 'C' // a function seen for the first time
	TraceThread   byte = 'T' // a thread seen for the first time
	TraceValue    byte = 'V' // a value's text (arguments, a return value, an exception)
	TraceType     byte = 'Y' // the name of a type whose objects TraceValues show
	TraceValues   byte = 'G' // values the machine code recorded, binary
	TraceBatch    byte = 'B' // events (see Event*)
	TraceDropped  byte = 'D' // events dropped: a count
	TraceHooked   byte = 'H' // before 3.12: the threads that existed are hooked
	TraceProcess  byte = 'P' // following forks: the pid the next records are from
	TraceKick     byte = 'K' // read the ring now (no data)
	TraceCounts   byte = 'A' // what the -c table in the program gained (made by transport from the ring)
)

// A trace's events: the top byte of an event's first word (kind << 56 |
// thread << 32 | function).
const (
	EventCall      = 0
	EventReturn    = 1
	EventException = 2
	EventNested    = 3 // time spent in calls the hook counted itself (-c in the program)
	EventResume    = 4 // a generator or coroutine resumed
	EventSuspend   = 5 // one suspended
	EventFrame     = 6 // which frame the thread's next event is (32 bits of its address)
)

// lptrace exec's records (hook/exec.py).
const (
	ExecStarted byte = 'S'
	ExecStdout  byte = 'O'
	ExecStderr  byte = 'E'
	ExecDone    byte = 'X' // "0" (ok) or "1" (the code raised)
)

// lptrace pdb's records (hook/pdb.py).
const (
	PdbStarted byte = 'S'
	PdbOutput  byte = 'O'
	PdbPrompt  byte = 'R' // pdb waits for a command line
	PdbDone    byte = 'X'
	PdbFailed  byte = 'E'
)

// lptrace stack's records (hook/stack.py).
const (
	StackStarted   byte = 'S'
	StackThread    byte = 'T'
	StackFrame     byte = 'F' // a frame of the last thread, outermost first
	StackLocal     byte = 'L' // a local of the last frame
	StackTask      byte = 'A' // an asyncio task
	StackTaskFrame byte = 'W' // a frame of the last task's coroutines
	StackDone      byte = 'X'
	StackFailed    byte = 'E' // the stacks could not be read: why
)
