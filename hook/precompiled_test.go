package hook

import (
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// allParts are the tracing hook's parts as TraceInstall names them.
var allParts = map[string]string{
	"common.py": commonSource, "values.py": valuesSource, "filter.py": filterSource,
	"threads.py": threadsSource, "native_code.py": nativeCodeSource, "native.py": nativeSource, "trace.py": traceSource, "load.py": loadSource,
}

// Every precompiled file parses, has every part, and was made from the
// sources of this tree: a stale one would be ignored at attach (slower).
func TestPrecompiledFresh(t *testing.T) {
	files, err := fs.Glob(precompiledFiles, "precompiled/*.bin")
	if err != nil || len(files) == 0 {
		t.Fatalf("no precompiled files (%v)", err)
	}
	for _, f := range files {
		data, _ := precompiledFiles.ReadFile(f)
		pc, err := parsePrecompiled(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		version := strings.TrimSuffix(filepath.Base(f), ".bin")
		if !strings.HasPrefix(pc.python, version+".") {
			t.Errorf("%s was made by Python %s", f, pc.python)
		}
		names, sources := make([]string, 0, len(allParts)), make([]string, 0, len(allParts))
		for n, s := range allParts {
			names, sources = append(names, n), append(sources, s)
		}
		if pc.codesFor(names, sources) == nil {
			t.Errorf("hook/%s is stale (a part changed since it was made): run hook/precompile.sh", f)
		}
	}
}

func TestPrecompiledStalePart(t *testing.T) {
	pc := precompiledFor("3.12")
	if pc == nil {
		t.Skip("no precompiled 3.12")
	}
	if pc.codesFor([]string{"common.py", "trace.py"}, []string{commonSource, traceSource}) == nil {
		t.Fatal("the current sources were refused")
	}
	if pc.codesFor([]string{"common.py", "trace.py"}, []string{commonSource, traceSource + "\n"}) != nil {
		t.Error("an edited part was accepted")
	}
	if pc.codesFor([]string{"common.py", "nope.py"}, []string{commonSource, ""}) != nil {
		t.Error("a missing part was accepted")
	}
	good := "lptrace precompiled 2\npython 3.12 3.12.1\nmagic 0d0a\npart a.py 0000abcd 3\nabc\n"
	if _, err := parsePrecompiled([]byte(good)); err != nil {
		t.Errorf("parsePrecompiled(%q): %v", good, err)
	}
	for _, bad := range []string{"", "lptrace precompiled 2\n", "lptrace precompiled 2\npython 3.12 3.12.1\nmagic zz\n",
		"lptrace precompiled 2\npython 3.12 3.12.1\nmagic 0d0a\npart a.py 00 3\nabc\n",
		"lptrace precompiled 2\npython 3.12 3.12.1\nmagic 0d0a\npart a.py " + strings.Repeat("0", 8) + " 9\nabc\n",
		// the format of before: another checksum
		"lptrace precompiled 1\npython 3.12 3.12.1\nmagic 0d0a\npart a.py " + strings.Repeat("0", 16) + " 3\nabc\n"} {
		if _, err := parsePrecompiled([]byte(bad)); err == nil {
			t.Errorf("parsePrecompiled(%q) accepted it", bad)
		}
	}
}

// The install payload, run the way PyRun_SimpleString runs it, with its
// data in memory as the engine places it, in every interpreter with a real
// FIFO: the hook starts, says how it got its code, records a call of the
// program, and binds no name in __main__. Precompiled code is loaded
// whenever this interpreter's bytecode magic number is the one it was made
// with. With another magic number, or its data not where it says, the
// Precompiled payload does nothing at all (lptrace then sends the source).
func TestTraceInstallLoads(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(filepath.Base(py), func(t *testing.T) {
			t.Parallel()
			if exec.Command(py, "-c", "import ctypes").Run() != nil {
				// (the whole suite covers such a build: tests/, 3.13-musl)
				t.Skip("no ctypes: this test places the payload's data in memory with it")
			}
			out, _ := python(t, py, `import sys
try:
    import importlib.util as u
    m = u.MAGIC_NUMBER
except ImportError:
    import imp
    m = imp.get_magic()
sys.stdout.write('%d.%d %s' % (sys.version_info[0], sys.version_info[1], ''.join('%02x' % c for c in bytearray(m))))`, nil)
			version, magic, _ := strings.Cut(out, " ")
			pc := precompiledFor(version)
			fast := "compiled"
			if pc != nil && strings.EqualFold(magic, hex.EncodeToString(pc.magic)) {
				fast = "precompiled"
			}
			// (A filter that holds the data placeholder is no data address.)
			for _, cfg := range []TraceConfig{{}, {Returns: true, Args: true, Filters: []Filter{{Pattern: "lptrace_*"}, {Exclude: true, Pattern: DataAt}}}} {
				for load, want := range map[Load]string{Precompiled: fast, Source: "compiled"} {
					if got := runInstall(t, py, true, func(p Pipe) ([]byte, []byte) { return traceInstall(p, "s1", cfg, version, load, pc) }); got != want {
						t.Errorf("config %+v, load %d: the hook's code was %q, want %s (magic %s)", cfg, load, got, want, magic)
					}
				}
			}
			if pc == nil {
				return
			}
			other := *pc
			other.magic = []byte{0x0d, 0x0a, 0x0d, 0x0a}
			if got := runInstall(t, py, true, func(p Pipe) ([]byte, []byte) {
				return traceInstall(p, "s1", TraceConfig{}, version, Precompiled, &other)
			}); got != "" {
				t.Errorf("with another magic number the precompiled payload ran the hook (code %q)", got)
			}
			if got := runInstall(t, py, false, func(p Pipe) ([]byte, []byte) { return traceInstall(p, "s1", TraceConfig{}, version, Precompiled, pc) }); got != "" {
				t.Errorf("with its data missing the precompiled payload ran the hook (code %q)", got)
			}
		})
	}
}

// runInstall runs the payload made for a fresh FIFO in py, as the first
// statement of a program that then calls lptrace_probe, with its data in
// the program's memory (withData; else the placeholder gets the address 1),
// and returns the last field of the hook's start record, or "" when the
// hook did not start (it then sent nothing at all).
func runInstall(t *testing.T, py string, withData bool, payload func(Pipe) ([]byte, []byte)) string {
	t.Helper()
	fifo, r := testFIFO(t)
	defer r.Close()
	code, data := payload(pipeOf(t, fifo))
	dataFile := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(dataFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// As the engine does: the data in memory, its address in the code.
	prog := `import sys, time, ctypes
data = open(sys.argv[1], 'rb').read()
keep = ctypes.create_string_buffer(data, len(data) + 1)
addr = ctypes.addressof(keep) if sys.argv[2] == '1' else 1
src = sys.stdin.read()
if data:  # as the engine does: only with data, only the last one
    i = src.rindex('` + DataAt + `')
    src = src[:i] + '0x%016x' % addr + src[i + 18:]
interval = getattr(sys, 'getswitchinterval', lambda: 0)()
bytes = getattr = None  # a program's globals: the statement must not use them
before = set(globals())
exec(compile(src, '<string>', 'exec'))
if set(globals()) != before | set(['before']):
    sys.stderr.write('the payload bound %r in __main__' % sorted(set(globals()) - before))
    sys.exit(3)
def lptrace_probe():
    pass
for i in range(3):
    lptrace_probe()
    time.sleep(0.1)
# The timer thread puts it back after its first flush (later on a loaded
# machine): 5 s at most.
for i in range(50):
    if sys.__dict__.get('getswitchinterval', lambda: 0)() == interval:
        break
    time.sleep(0.1)
if sys.__dict__.get('getswitchinterval', lambda: 0)() != interval:
    sys.stderr.write('the switch interval is %r, it was %r' % (sys.getswitchinterval(), interval))
    sys.exit(4)
`
	with := "0"
	if withData {
		with = "1"
	}
	cmd := exec.Command(py, "-c", prog, dataFile, with)
	cmd.Stdin = strings.NewReader(string(code))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("%s: %v\n%s", py, err, out)
	}
	sent, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	recs, ok := parseRecords(sent)
	if ok && len(recs) == 0 {
		return ""
	}
	if !ok || recs[0].kind != 'S' {
		t.Fatalf("records %q", recs)
	}
	probe := false
	for _, rec := range recs {
		probe = probe || (rec.kind == 'C' && strings.Contains(rec.data, "\tlptrace_probe\t"))
	}
	if !probe {
		t.Errorf("no code record of lptrace_probe in %q", recs)
	}
	f := strings.Split(recs[0].data, "\t")
	if len(f) != 6 {
		t.Fatalf("start record %q, want 6 fields", recs[0].data)
	}
	return f[5]
}
