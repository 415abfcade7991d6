package symbols

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lptrace/lptrace/proc"
)

// ErrNotPython means no mapped file of the process defines the CPython
// runtime's entry points.
var ErrNotPython = errors.New("not a Python process")

// RequiredSymbols are the runtime functions every injection needs.
var RequiredSymbols = []string{"PyGILState_Ensure", "PyGILState_Release", "PyRun_SimpleString", "Py_IsInitialized", "Py_AddPendingCall"}

// Target is what lptrace knows about a Python process before touching it.
type Target struct {
	PID int
	// MapQuery answers for one address at a time where the kernel can
	// (then Maps holds the file mappings only); else Maps is the whole
	// text of /proc/PID/maps, read at MapsRead.
	MapQuery *proc.Maps
	Maps     []proc.Mapping
	MapsRead time.Time
	Python   *Module // the module that defines the CPython runtime
	Version  Version
	Libc     *Module // may be nil for a static executable
	Loader   *Module // the dynamic loader (ld.so); may be nil
	// Program is proc.ProgramID from before the maps were read: if the
	// process exec'd since, every address here belongs to a program gone.
	Program string
}

// Close releases the files.
// FreeThreaded tells whether the runtime is a free-threaded build (3.13t,
// configured --disable-gil): it alone exports the merge of a per-thread
// reference count.
func (t *Target) FreeThreaded() bool { return t.Python.Has("_Py_MergeZeroLocalRefcount") }

func (t *Target) Close() {
	if t.MapQuery != nil {
		t.MapQuery.Close()
	}
	if t.Python != nil {
		t.Python.Close()
	}
	for _, m := range []*Module{t.Libc, t.Loader} {
		if m != nil && m != t.Python {
			m.Close()
		}
	}
}

// Regular expressions here (and in inject) compile on first use, through
// sync.OnceValue, not at lptrace's start: an attach is timed from there, and
// most commands need few of them.
var (
	pythonName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(lib)?python\d`) })
	libcName   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(libc\.so|libc-[0-9.]+\.so|ld-musl-)`) })
	loaderName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^ld-linux.*\.so`) })
)

// Find locates the Python runtime and the C library of process pid.
func Find(pid int) (*Target, error) { return FindThen(pid, nil) }

// FindThen is Find that calls found, when not nil, as soon as it knows the
// process runs CPython (before it reads the C library's symbols and the
// version): the caller's own preparations for an attach can start.
func FindThen(pid int, found func()) (*Target, error) {
	program := proc.ProgramID(pid)
	read := time.Now()
	q, err := proc.OpenMaps(pid)
	if err != nil {
		return nil, err
	}
	var maps []proc.Mapping
	if q.Queries() {
		maps, err = q.Files()
	} else {
		maps, err = proc.ReadMaps(pid)
	}
	if err != nil {
		q.Close()
		return nil, err
	}
	t, err := findInMaps(pid, maps, found)
	if t != nil {
		t.Program, t.MapsRead = program, read
		if q.Queries() {
			t.MapQuery, q = q, nil
		}
	}
	if q != nil {
		q.Close()
	}
	if err != nil && program != "" {
		if now := proc.ProgramID(pid); now != "" && now != program {
			return nil, fmt.Errorf("process %d exec'd %s while lptrace was reading it", pid, proc.Executable(pid))
		}
	}
	return t, err
}

// findInMaps is Find with the mappings already read.
func findInMaps(pid int, maps []proc.Mapping, onFound func()) (*Target, error) {
	t := &Target{PID: pid, Maps: maps}
	files := mappedFiles(maps)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	exe = strings.TrimSuffix(exe, " (deleted)")

	// Likely candidates first (libpython*, python*, the executable), then
	// every other executable mapping, for interpreters embedded under
	// another name.
	var likely, others []string
	for _, f := range files {
		if pythonName().MatchString(path.Base(f)) || f == exe {
			likely = append(likely, f)
		} else if !libcName().MatchString(path.Base(f)) {
			others = append(others, f)
		}
	}
	var found []*Module
	var lastErr error
	for _, group := range [][]string{likely, others} {
		for _, f := range group {
			m, err := LoadModule(pid, maps, f)
			if err != nil {
				lastErr = err
				continue
			}
			// .dynsym only: an interpreter always exports these, and reading
			// every library's .symtab would be slow.
			_, ensure := m.lookupExport("PyGILState_Ensure")
			_, run := m.lookupExport("PyRun_SimpleString")
			if ensure && run {
				found = append(found, m)
			} else {
				m.Close()
			}
		}
		if len(found) > 0 {
			break
		}
	}
	switch len(found) {
	case 0:
		if lastErr != nil && os.IsPermission(errors.Unwrap(lastErr)) {
			return nil, lastErr
		}
		return nil, ErrNotPython
	case 1:
	default:
		names := make([]string, len(found))
		for i, m := range found {
			names[i] = m.Path
			m.Close()
		}
		return nil, fmt.Errorf("process %d has %d Python runtimes (%s): lptrace cannot tell which one runs the program", pid, len(found), strings.Join(names, ", "))
	}
	t.Python = found[0]
	if onFound != nil {
		onFound()
	}
	for _, name := range RequiredSymbols {
		s, err := t.Python.Lookup(name)
		if err != nil {
			t.Close()
			return nil, err
		}
		if s.IFunc {
			t.Close()
			return nil, fmt.Errorf("%s in %s is an indirect function", name, t.Python.Path)
		}
	}
	var err error
	if t.Version, err = t.Python.pythonVersion(); err != nil {
		t.Close()
		return nil, fmt.Errorf("%s: %w", t.Python.Path, err)
	}
	for _, f := range files {
		if libcName().MatchString(path.Base(f)) {
			if m, err := LoadModule(pid, maps, f); err == nil {
				if _, ok := m.lookupExport("munmap"); !ok {
					m.Close()
					continue
				}
				t.Libc = m
				break
			}
		}
	}
	for _, f := range files {
		if loaderName().MatchString(path.Base(f)) {
			if m, err := LoadModule(pid, maps, f); err == nil {
				t.Loader = m
			}
			break
		}
	}
	return t, nil
}

// mappedFiles lists the distinct files with an executable mapping, in
// address order.
func mappedFiles(maps []proc.Mapping) []string {
	seen := map[string]bool{}
	var out []string
	sorted := append([]proc.Mapping(nil), maps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	for _, m := range sorted {
		if m.FileBacked() && m.Exec() && !seen[m.Path] {
			seen[m.Path] = true
			out = append(out, m.Path)
		}
	}
	return out
}
