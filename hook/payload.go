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
	"fmt"
	"sort"
	"strings"
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
		"FIFO_ID": p.id(),
		"CODE":    base64.StdEncoding.EncodeToString(code),
	})
}

// Pipe is lptrace's FIFO as the payload must find it: its path in the
// target's mount namespace and the identity (device, inode, owner) that the
// payload checks after opening it.
type Pipe struct {
	Path     string
	Dev, Ino uint64
	UID      int
	Ctime    int64 // change time, in nanoseconds
}

func (p Pipe) id() string { return fmt.Sprintf("%d:%d:%d:%d", p.Dev, p.Ino, p.UID, p.Ctime) }

// wrap builds: try: exec(compile(SRC, ...), {globals}) except BaseException: pass
// The statement binds no name in __main__. `exec(code, dict)` is valid
// Python 2.7 too (the tuple form of the exec statement).
func wrap(src string, globals map[string]string) []byte {
	var g strings.Builder
	g.WriteString("{'__name__': '__lptrace__'")
	for _, k := range sortedKeys(globals) {
		fmt.Fprintf(&g, ", %s: %s", PyLiteral(k), PyLiteral(globals[k]))
	}
	g.WriteString("}")
	return []byte(fmt.Sprintf("try:\n exec(compile(%s, '<lptrace>', 'exec', 0, 1), %s)\nexcept BaseException:\n pass\n",
		PyLiteral(src), g.String()))
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
func PyLiteral(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

//go:embed trace.py
var traceSource string

//go:embed values.py
var valuesSource string

//go:embed filter.py
var filterSource string

//go:embed native.py
var nativeSource string

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
	RetValues bool // return values and exceptions
	StrSize   int  // values cut at this many characters
	Verbose   bool // repr() of any object (runs the program's code)
	Follow    bool // forked children keep tracing
	NoNative  bool // never the machine-code callback (native.py)
}

// Native tells whether the hook may record calls with its machine-code
// callback: calls only, in one process (the hook still decides by the
// interpreter: 3.12+, x86-64, with the GIL).
func (c TraceConfig) Native() bool {
	return !c.NoNative && !c.Returns && !c.Times && !c.Values() && !c.Follow
}

// literal is the config as a Python dict literal (the hook imports
// nothing to read it: no json module loaded into the program).
func (c TraceConfig) literal() string {
	var f []string
	for _, x := range c.Filters {
		f = append(f, fmt.Sprintf("(%s, %s)", pyBool(x.Exclude), PyLiteral(x.Pattern)))
	}
	return fmt.Sprintf("{'filters': [%s], 'nostdlib': %s, 'returns': %s, 'times': %s, 'args': %s, 'retvals': %s, 'strsize': %d, 'verbose': %s, 'follow': %s, 'native': %s}",
		strings.Join(f, ", "), pyBool(c.NoStdlib), pyBool(c.Returns), pyBool(c.Times), pyBool(c.Args), pyBool(c.RetValues),
		c.StrSize, pyBool(c.Verbose), pyBool(c.Follow), pyBool(c.Native()))
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
func (c TraceConfig) Values() bool { return c.Args || c.RetValues }

// TraceInstall returns the source that installs the call-tracing hook of
// session, writing its records to the FIFO at fifo (a path in the target's
// mount namespace). On 3.12+ it covers every thread (sys.monitoring); before,
// only the calling thread and threads started later.
func TraceInstall(p Pipe, session string, cfg TraceConfig) []byte {
	// Only the parts the options need: the target compiles all of it while
	// holding the GIL (about 6 ms for the whole hook on 3.12).
	src := "CONFIG = " + cfg.literal() + "\n" + commonSource
	if cfg.Values() {
		src += valuesSource
	}
	if len(cfg.Filters) > 0 || cfg.NoStdlib {
		src += filterSource
	}
	if cfg.Native() {
		src += nativeSource
	}
	return wrap(src+traceSource, map[string]string{"SESSION": session, "FIFO": p.Path, "FIFO_ID": p.id()})
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
	return wrap(commonSource+pdbSource, map[string]string{"FIFO": out.Path, "FIFO_ID": out.id(), "IN": in.Path, "IN_ID": in.id()})
}

//go:embed stack.py
var stackSource string

// Stack returns the source that sends the Python stack of every thread,
// with each frame's local variables (shown by the safe repr, cut at strsize
// characters; verbose: any object's own repr) when locals is set.
func Stack(out Pipe, locals bool, strsize int, verbose bool) []byte {
	b := map[bool]string{false: "0", true: "1"}
	return wrap(commonSource+valuesSource+stackSource, map[string]string{"FIFO": out.Path, "FIFO_ID": out.id(),
		"LOCALS": b[locals], "STRSIZE": fmt.Sprint(strsize), "VERBOSE": b[verbose]})
}
