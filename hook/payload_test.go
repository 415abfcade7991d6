package hook

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// literalTests are strings that are easy to quote wrong.
var literalTests = []string{
	"",
	"plain ASCII text",
	"it's",
	`"double" and 'single'`,
	`'''triple'''`,
	`back\slash`,
	`\`,
	`trailing backslash\`,
	`\\server\share`,
	`\x41 is not an escape here`,
	`\u00e9 \N{BULLET} \0`,
	"line\nbreak\n",
	"cr\r lf\n tab\t vt\v ff\f bs\b bell\a",
	"\x00",
	"\x001", // NUL then a digit: an octal escape \0 would swallow the 1
	"\x00\x00x",
	"esc \x1b[31mred\x1b[0m",
	"del \x7f",
	"\x80\x81\x9f\xa0\xfe\xff",
	"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x8d", // UTF-8: café 日本 🐍
	"invalid UTF-8 \xc3\x28 \xed\xa0\x80",
	"\u202eoverride",
	"/tmp/lptrace-1234-0123456789abcdef01234567/pipe",
	"{'__name__': '__main__'}",
	"%s %d %% {0}",
}

// allBytes is every byte value once.
func allBytes() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

func TestPyLiteral(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `''`},
		{"abc", `'abc'`},
		{"it's", `'it\'s'`},
		{`"`, `'"'`},
		{`a\b`, `'a\\b'`},
		{"a\nb", `'a\nb'`},
		{"\x00", `'\x00'`},
		{"\x001", `'\x001'`},
		{"\t\r\x1b\x7f", `'\x09\x0d\x1b\x7f'`},
		{"\xc3\xa9", `'\xc3\xa9'`},
		{"\xff", `'\xff'`},
		{" ~", `' ~'`},
	}
	for _, tt := range tests {
		if got := PyLiteral(tt.in); got != tt.want {
			t.Errorf("PyLiteral(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, s := range append(literalTests, allBytes()) {
		lit := PyLiteral(s)
		if !printableASCII(lit) {
			t.Errorf("PyLiteral(%q) = %q: not printable ASCII", s, lit)
		}
	}
}

// printableASCII reports whether s holds only bytes 0x20-0x7e and newlines:
// source that means the same under any source encoding, without NUL (it
// is passed to PyRun_SimpleString as a C string).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 || c > 0x7e) && c != '\n' {
			return false
		}
	}
	return true
}

func TestExecSource(t *testing.T) {
	code := []byte("print('hi')\n\x00\xff")
	src := Exec(Pipe{Path: "/tmp/lptrace-1-00/pipe"}, code)
	if !printableASCII(string(src)) {
		t.Errorf("Exec source is not printable ASCII:\n%s", src)
	}
	if !bytes.HasPrefix(src, []byte("try:\n")) || !bytes.HasSuffix(src, []byte("except BaseException:\n pass\n")) {
		t.Errorf("Exec source is not wrapped in try/except BaseException:\n%s", src)
	}
	for _, want := range []string{
		PyLiteral("/tmp/lptrace-1-00/pipe"),
		PyLiteral("cHJpbnQoJ2hpJykKAP8="), // base64 of code
		"'__name__': '__lptrace__'",
	} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("Exec source does not contain %s", want)
		}
	}
}

var pythonName = regexp.MustCompile(`^python\d\.\d+$`)

// pythons lists the installed interpreters: pyenv's (Python 2 and 3) and
// the system's Python 3.11.
func pythons(t *testing.T) []string {
	t.Helper()
	// integration_test.sh's list: every interpreter it found, 3.14 and
	// 3.15 too.
	if list := os.Getenv("LPTRACE_PYTHONS"); list != "" {
		var out []string
		for _, p := range strings.Split(list, ":") {
			// A free-threaded build (python3.13t): lptrace refuses it
			// before any payload (TestRefusesFreeThreaded).
			if !strings.HasSuffix(p, "t") {
				out = append(out, p)
			}
		}
		return out
	}
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".pyenv")
	}
	found, _ := filepath.Glob(filepath.Join(root, "versions", "*", "bin", "python[23].[0-9]*"))
	sort.Strings(found)
	found = append(found, "/usr/bin/python3.11")
	var out []string
	for _, p := range found {
		if !pythonName.MatchString(filepath.Base(p)) {
			continue
		}
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Skip("no Python interpreter found")
	}
	return out
}

// python runs an interpreter with -c prog and stdin.
func python(t *testing.T, py, prog string, stdin []byte) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(py, "-c", prog)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -c %q: %v\n%s", py, prog, err, e.Bytes())
	}
	return o.String(), e.String()
}

// TestPyLiteralPython evaluates each literal in every interpreter. A
// literal means the same bytes on Python 2 (a byte string) and Python 3 (a
// text string whose code points are those bytes, i.e. Latin-1).
func TestPyLiteralPython(t *testing.T) {
	inputs := append(literalTests, allBytes())
	var prog strings.Builder
	prog.WriteString("import sys, binascii\n")
	prog.WriteString("def show(s):\n")
	prog.WriteString("    if not isinstance(s, bytes): s = s.encode('latin-1')\n")
	prog.WriteString("    sys.stdout.write(binascii.hexlify(s).decode('ascii') + '\\n')\n")
	for _, s := range inputs {
		prog.WriteString("show(" + PyLiteral(s) + ")\n")
	}
	var want strings.Builder
	for _, s := range inputs {
		want.WriteString(hex.EncodeToString([]byte(s)) + "\n")
	}
	for _, py := range pythons(t) {
		t.Run(py, func(t *testing.T) {
			t.Parallel()
			got, _ := python(t, py, prog.String(), nil)
			if got == want.String() {
				return
			}
			gotLines := strings.Split(got, "\n")
			for i, s := range inputs {
				w := hex.EncodeToString([]byte(s))
				if i >= len(gotLines) || gotLines[i] != w {
					g := ""
					if i < len(gotLines) {
						g = gotLines[i]
					}
					t.Errorf("%s means %s, want %s", PyLiteral(s), g, w)
				}
			}
		})
	}
}

// TestExecCompiles checks that the payload is valid source for every
// interpreter, and that run where lptrace is gone (no FIFO) it does
// nothing: no output, no exception, no name left in __main__.
func TestExecCompiles(t *testing.T) {
	codes := [][]byte{
		[]byte("1 + 1"),
		[]byte("import os\nprint(os.getpid())\n"),
		[]byte("raise SystemExit(3)"),
		[]byte(allBytes()),
		{},
	}
	gone := filepath.Join(t.TempDir(), "lptrace-gone", "pipe")
	for _, py := range pythons(t) {
		t.Run(py, func(t *testing.T) {
			t.Parallel()
			for _, code := range codes {
				src := Exec(Pipe{Path: gone}, code)
				python(t, py, "import sys; compile(sys.stdin.read(), 'x', 'exec')", src)

				out, errOut := python(t, py, `import sys
before = set(globals())
exec(compile(sys.stdin.read(), '<string>', 'exec'))
sys.stdout.write(repr(sorted(set(globals()) - before - set(['before']))))
`, src)
				if out != "[]" || errOut != "" {
					t.Errorf("payload for %q with no FIFO: stdout %q, stderr %q; want [] and nothing", code, out, errOut)
				}
			}
		})
	}
}

// record is one message of the payload to lptrace.
type record struct {
	kind byte
	data string
}

func parseRecords(b []byte) ([]record, bool) {
	var out []record
	for len(b) > 0 {
		if len(b) < 5 {
			return out, false
		}
		n := int(b[1]) | int(b[2])<<8 | int(b[3])<<16 | int(b[4])<<24
		if len(b) < 5+n {
			return out, false
		}
		out = append(out, record{b[0], string(b[5 : 5+n])})
		b = b[5+n:]
	}
	return out, true
}

// TestExecRecords runs the payload in every interpreter with a real FIFO
// and checks what it sends: S (started), O/E (output), X (status).
func TestExecRecords(t *testing.T) {
	tests := []struct {
		code   string
		out    string // concatenated O records
		err    string // substring of the E records
		status string
	}{
		{"x = 6\nx * 7", "42\n", "", "0"},
		{"print('hello')", "hello\n", "", "0"},
		{"import sys\nsys.stderr.write('warn\\n')\nNone", "", "warn", "0"},
		{"1/0", "", "ZeroDivisionError", "1"},
		{"raise SystemExit(3)", "", "SystemExit", "1"},
		{"def f(:", "", "SyntaxError", "1"},
	}
	for _, py := range pythons(t) {
		t.Run(py, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				fifo, r := testFIFO(t)
				dir := filepath.Dir(fifo)
				python(t, py, "import sys; exec(compile(sys.stdin.read(), '<string>', 'exec'))", Exec(pipeOf(t, fifo), []byte(tt.code)))
				data, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					t.Fatal(err)
				}
				recs, ok := parseRecords(data)
				if !ok || len(recs) < 2 || recs[0].kind != 'S' || recs[len(recs)-1].kind != 'X' {
					t.Fatalf("code %q: records %q", tt.code, recs)
				}
				if f := strings.Split(recs[0].data, "\t"); len(f) != 3 || !strings.HasPrefix(f[2], strings.TrimPrefix(filepath.Base(py), "python")) {
					t.Errorf("code %q: started record %q, want pid, thread and version", tt.code, recs[0].data)
				}
				var out, errOut strings.Builder
				for _, rec := range recs[1 : len(recs)-1] {
					switch rec.kind {
					case 'O':
						out.WriteString(rec.data)
					case 'E':
						errOut.WriteString(rec.data)
					default:
						t.Errorf("code %q: unexpected record %q", tt.code, rec)
					}
				}
				errOK := strings.Contains(errOut.String(), tt.err)
				if tt.err == "" {
					errOK = errOut.Len() == 0
				}
				if out.String() != tt.out || !errOK {
					t.Errorf("code %q: stdout %q, stderr %q; want %q and %q", tt.code, out.String(), errOut.String(), tt.out, tt.err)
				}
				if got := recs[len(recs)-1].data; got != tt.status {
					t.Errorf("code %q: status %q, want %q", tt.code, got, tt.status)
				}
				if _, err := os.Lstat(dir); !os.IsNotExist(err) {
					t.Errorf("code %q: the payload left %s behind (%v)", tt.code, dir, err)
				}
			}
		})
	}
}

// testFIFO makes a FIFO in a fresh directory the way lptrace does, and
// opens it for reading without blocking.
func testFIFO(t *testing.T) (string, *os.File) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lptrace-test")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fifo, r
}

// pipeOf describes an existing FIFO the way lptrace does.
func pipeOf(t *testing.T, fifo string) Pipe {
	var st syscall.Stat_t
	if err := syscall.Stat(fifo, &st); err != nil {
		t.Fatal(err)
	}
	return Pipe{Path: fifo, Dev: uint64(st.Dev), Ino: uint64(st.Ino), UID: int(st.Uid), Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
}

// A FIFO planted at lptrace's path after lptrace removed its own (another
// user could do that in /tmp) receives nothing, and the code does not run.
func TestExecPlantedFIFO(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py, func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "pipe")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			ours := pipeOf(t, fifo)
			os.Remove(fifo)
			syscall.Mkfifo(fifo, 0o600) // the planted one: same path, new inode
			r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			marker := filepath.Join(dir, "ran")
			python(t, py, "import sys; exec(compile(sys.stdin.read(), '<string>', 'exec'))",
				Exec(ours, []byte("open("+PyLiteral(marker)+", 'w').close()")))
			data, _ := io.ReadAll(r)
			if len(data) != 0 {
				t.Errorf("the planted FIFO received %q", data)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the code ran although the FIFO was not lptrace's")
			}
		})
	}
}
