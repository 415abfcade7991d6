// Package hook holds the Python code lptrace runs inside a target, and
// builds the source strings handed to PyRun_SimpleString.
//
// Every payload runs in a globals dict of its own (never the program's
// __main__), inside a try/except that swallows everything, because an
// exception escaping PyRun_SimpleString is printed on the target's stderr and
// a SystemExit there would end the program.
package hook

import (
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/lptrace/lptrace/transport"
)

//go:embed exec.py
var execSource string

//go:embed common.py
var commonSource string

// Exec returns the source that runs code in the target and reports its
// output and outcome through the FIFO at fifo (a path in the target's mount
// namespace).
func Exec(p Pipe, code []byte) []byte {
	return wrap(commonSource+execSource, map[string]string{
		"FIFO":    p.Path,
		"FIFO_ID": pipeID(p),
		"CODE":    base64.StdEncoding.EncodeToString(code),
	})
}

// Pipe is lptrace's FIFO (or ring file) as the payload must find it
// (transport makes them).
type Pipe = transport.Pipe

// pipeID is the identity the payload checks after opening the pipe.
func pipeID(p Pipe) string { return fmt.Sprintf("%d:%d:%d:%d", p.Dev, p.Ino, p.UID, p.Ctime) }

// wrap builds: try: exec(compile(SRC, ...), {globals}) except BaseException: pass
// The statement binds no name in __main__. `exec(code, dict)` is valid
// Python 2.7 too (the tuple form of the exec statement).
func wrap(src string, globals map[string]string) []byte {
	return wrapWith(src, globals, nil)
}

// wrapWith is wrap with more globals given as Python expressions.
func wrapWith(src string, globals, exprs map[string]string) []byte {
	b := make([]byte, 0, len(src)*9/8+4096)
	b = append(b, "try:\n exec(compile("...)
	b = append(appendPyLiteral(b, src), ", '<lptrace>', 'exec', 0, 1), "...)
	b = appendGlobals(b, globals, exprs)
	return append(b, ")\nexcept BaseException:\n pass\n"...)
}

// appendGlobals appends a payload's globals dict: globals as string
// literals, exprs as Python expressions.
func appendGlobals(b []byte, globals, exprs map[string]string) []byte {
	b = append(b, "{'__name__': '__lptrace__'"...)
	key := func(k string) { b = append(appendPyLiteral(append(b, ", "...), k), ": "...) }
	for _, k := range sortedKeys(globals) {
		key(k)
		b = appendPyLiteral(b, globals[k])
	}
	for _, k := range sortedKeys(exprs) {
		key(k)
		b = append(b, exprs[k]...)
	}
	return append(b, '}')
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PyLiteral quotes s as a Python string literal that means the same bytes
// on Python 2 and 3: printable ASCII as is, everything else escaped.
func PyLiteral(s string) string { return string(appendPyLiteral(nil, s)) }

func appendPyLiteral[T string | []byte](b []byte, s T) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
		default:
			b = append(b, '\\', 'x', digits[c>>4], digits[c&15])
		}
	}
	return append(b, '\'')
}

//go:embed trace.py
var traceSource string

//go:embed values.py
var valuesSource string

//go:embed filter.py
var filterSource string

//go:embed native.py
var nativeSource string

//go:embed threads.py
var threadsSource string

//go:embed native_code.py
var nativeCodeSource string

// perThreadProfile tells whether Python version ("3.11") has a profile
// function per thread (before 3.12): the hook then sets every thread's
// itself (threads.py).
func perThreadProfile(version string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(version, "%d.%d", &major, &minor); err != nil {
		return true
	}
	return major < 3 || major == 3 && minor < 12
}

// threadSource calls the per-thread installer an installed session left
// in sys: a few lines to compile, not the whole hook.
const threadSource = `import sys
f = getattr(sys, '__lptrace__', {}).get(SESSION)
if f is not None:
    f()
`

// TraceConfig says what the tracing hook records. The zero value records
// calls only, the cheapest mode.
type TraceConfig struct {
	Filters   []Filter
	NoStdlib  bool
	Returns   bool // return and exception events
	Times     bool // a clock reading per event
	Args      bool // arguments at each call
	Stack     bool // the callers of each call (-k)
	RetValues bool // return values and exceptions
	StrSize   int  // values cut at this many characters
	Verbose   bool // repr() of any object (runs the program's code)
	Follow    bool // forked children keep tracing
	NoNative  bool // never the machine-code callback (native.py)
	// Aggregate lets the machine-code callback keep the -c table in the
	// program (transport.Ring reads it) instead of sending every event.
	Aggregate bool
	// Ring is lptrace's ring file (transport.AddRing) as the hook must find
	// it, of RingSlots slots; none when RingSlots is 0 (the records go
	// through the pipe).
	Ring      Pipe
	RingSlots int
}

// Native tells whether the hook may record events with its machine-code
// callback: calls, returns, their times and the small values returned or
// passed (arguments: 3.12+), in one process (the hook still decides by the
// interpreter: x86-64, with the GIL; and with more than calls only over
// lptrace's ring).
func (c TraceConfig) Native() bool {
	return !c.NoNative && !c.Follow && !c.Stack
}

// literal is the config as a Python dict literal (the hook imports
// nothing to read it: no json module loaded into the program).
func (c TraceConfig) literal() string {
	var f []string
	for _, x := range c.Filters {
		f = append(f, fmt.Sprintf("(%s, %s)", pyBool(x.Exclude), PyLiteral(x.Pattern)))
	}
	ring := "None"
	if c.RingSlots > 0 {
		ring = fmt.Sprintf("(%s, %s, %d)", PyLiteral(c.Ring.Path), PyLiteral(pipeID(c.Ring)), c.RingSlots)
	}
	return fmt.Sprintf("{'filters': [%s], 'nostdlib': %s, 'returns': %s, 'times': %s, 'args': %s, 'stack': %s, 'retvals': %s, 'strsize': %d, 'verbose': %s, 'follow': %s, 'native': %s, 'aggregate': %s, 'ring': %s}",
		strings.Join(f, ", "), pyBool(c.NoStdlib), pyBool(c.Returns), pyBool(c.Times), pyBool(c.Args), pyBool(c.Stack), pyBool(c.RetValues),
		c.StrSize, pyBool(c.Verbose), pyBool(c.Follow), pyBool(c.Native()), pyBool(c.Aggregate), ring)
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// Filter is one -e pattern: a glob on the function's name, qualified name,
// module, or (when it contains a slash) file; Exclude is the '!' form.
type Filter struct {
	Exclude bool
	Pattern string
}

// Values tells whether each event carries a value id (arguments, return
// values, exceptions).
func (c TraceConfig) Values() bool { return c.Args || c.Stack || c.RetValues }

//go:embed load.py
var loadSource string

// Load says how a target gets the tracing hook's code.
type Load int

const (
	// Precompiled: the hook's parts as code objects compiled by the
	// target's Python version (precompiled/), which it loads with marshal
	// in a fraction of a millisecond if its bytecode magic number is theirs
	// (compiling the source took it 9-14 ms, holding the GIL). On another
	// magic number it does nothing at all: the caller sends Source next.
	// Where lptrace has no precompiled code for the version, Source.
	Precompiled Load = iota
	// Source: the target compiles the source.
	Source
)

// DataAt is the placeholder that the injection engine replaces with the
// address of TraceInstall's data (inject.Options).
const DataAt = "0x1a7ace0da7aadd12"

// TraceInstall returns the source that installs the call-tracing hook of
// session in a target running Python version ("3.11"), writing its records
// to the FIFO at fifo (a path in the target's mount namespace), and the
// data to place in the target's memory with it (DataAt; nil for Source).
// On 3.12+ the hook covers every thread (sys.monitoring); before, only the
// calling thread and threads started later. Its start record says which
// way it got its code ("precompiled" or "compiled").
func TraceInstall(p Pipe, session string, cfg TraceConfig, version string, load Load) (code, data []byte) {
	return traceInstall(p, session, cfg, version, load, precompiledFor(version))
}

func traceInstall(p Pipe, session string, cfg TraceConfig, version string, load Load, pc *precompiled) (code, data []byte) {
	// Only the parts the options need.
	names := []string{"common.py"}
	sources := []string{commonSource}
	add := func(name, src string) { names, sources = append(names, name), append(sources, src) }
	if cfg.Values() {
		add("values.py", valuesSource)
	}
	if len(cfg.Filters) > 0 || cfg.NoStdlib {
		add("filter.py", filterSource)
	}
	if perThreadProfile(version) {
		add("threads.py", threadsSource)
	}
	// The ring and its writers (every mode), the machine-code callback.
	add("native_code.py", nativeCodeSource)
	add("native.py", nativeSource)
	add("trace.py", traceSource)

	globals := map[string]string{"SESSION": session, "FIFO": p.Path, "FIFO_ID": pipeID(p)}
	config := cfg.literal()
	var codes [][]byte
	if load == Precompiled {
		codes = pc.codesFor(append(names, "load.py"), append(sources, loadSource))
	}
	if codes == nil {
		return wrapWith(strings.Join(sources, ""), globals, map[string]string{"CONFIG": config, "LOADED": "'compiled'"}), nil
	}

	// exec(LOADER if MAGIC_OK else 'pass', {globals} if MAGIC_OK else {})
	// One statement, which binds no name in __main__; valid on 2.7 too (the
	// exec statement's tuple form). The loader is small: a hex string
	// (bytes.fromhex is builtin); 2.7's str literals are bytes already.
	loader := codes[len(codes)-1]
	codes = codes[:len(codes)-1]
	// Names are looked up in __main__ first: the statement uses none but
	// exec and __import__ (b''.fromhex, not bytes.fromhex), so that a
	// program's global of the same name changes nothing. A module or an
	// attribute that is missing raises: nothing runs, the source follows.
	bin := func(b, data []byte) []byte {
		if version == "2.7" {
			return appendPyLiteral(b, data)
		}
		return append(hex.AppendEncode(append(b, "b''.fromhex('"...), data), "')"...)
	}
	var check []byte
	if version == "2.7" {
		check = append(bin([]byte("(__import__('imp').get_magic() == "), pc.magic), ')')
	} else {
		// (A free-threaded build of a version shares its bytecode: the
		// same magic number, and the same pyc files, cache tag cpython-313.)
		check = append(bin([]byte("(__import__('sys').modules['_frozen_importlib_external'].MAGIC_NUMBER == "), pc.magic), ')')
	}
	b := bin([]byte("try:\n exec(__import__('marshal').loads("), loader)
	b = append(append(append(b, ") if "...), check...), " else 'pass',\n  "...)
	var sizes strings.Builder
	for _, c := range codes {
		fmt.Fprintf(&sizes, "%d, ", len(c))
		data = append(data, c...)
	}
	// _lptrace_codes sorts last: nothing after it holds text of the user's
	// (a filter), so its DataAt is the last one, which the engine replaces.
	b = appendGlobals(b, globals, map[string]string{"CONFIG": config, "LOADED": "'precompiled'",
		"_lptrace_codes": "(" + DataAt + ", (" + sizes.String() + "))"})
	b = append(append(append(b, " if "...), check...), " else {})\nexcept BaseException:\n pass\n"...)
	return b, data
}

// TraceThread returns the source that hooks the calling thread into an
// installed session (Python < 3.12, threads that existed at attach).
func TraceThread(session string) []byte {
	return wrap(threadSource, map[string]string{"SESSION": session})
}

//go:embed pdb.py
var pdbSource string

// Pdb returns the source that starts a pdb session in the thread that runs
// it: pdb reads its commands from in and writes to out, two FIFOs of
// lptrace's.
func Pdb(out, in Pipe) []byte {
	return wrap(commonSource+pdbSource, map[string]string{"FIFO": out.Path, "FIFO_ID": pipeID(out), "IN": in.Path, "IN_ID": pipeID(in)})
}

//go:embed stack.py
var stackSource string

// Stack returns the source that sends the Python stack of every thread,
// with each frame's local variables (shown by the safe repr, cut at strsize
// characters; verbose: any object's own repr) when locals is set.
func Stack(out Pipe, locals bool, strsize int, verbose, tasks bool) []byte {
	b := map[bool]string{false: "0", true: "1"}
	return wrap(commonSource+valuesSource+stackSource, map[string]string{"FIFO": out.Path, "FIFO_ID": pipeID(out),
		"LOCALS": b[locals], "STRSIZE": fmt.Sprint(strsize), "VERBOSE": b[verbose], "TASKS": b[tasks]})
}
