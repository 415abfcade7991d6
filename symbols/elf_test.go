package symbols

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lptrace/lptrace/proc"
)

// base is where the tests place shared objects, as the dynamic linker
// would on x86-64.
const base = 0x7f0000000000

// Test files, built from testdata/fakepython.c by testdata/build.sh.
const (
	fakeLib      = "testdata/libpython3.12-fake.so"
	fakeStripped = "testdata/libpython3.12-fake-stripped.so"
)

// loadMappings returns the mappings the dynamic linker would make for the
// PT_LOAD segments of ef: an ET_DYN file at base, an ET_EXEC file at its
// link addresses.
func loadMappings(ef *elf.File, base uint64, path string) []proc.Mapping {
	if ef.Type == elf.ET_EXEC {
		base = 0
	}
	var maps []proc.Mapping
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		perms := []byte("---p")
		if p.Flags&elf.PF_R != 0 {
			perms[0] = 'r'
		}
		if p.Flags&elf.PF_W != 0 {
			perms[1] = 'w'
		}
		if p.Flags&elf.PF_X != 0 {
			perms[2] = 'x'
		}
		maps = append(maps, proc.Mapping{
			Start:  base + pageDown(p.Vaddr),
			End:    base + pageUp(p.Vaddr+p.Memsz),
			Perms:  string(perms),
			Offset: pageDown(p.Off),
			Dev:    "08:01",
			Inode:  1,
			Path:   path,
		})
	}
	return maps
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// openFake loads a test file placed at base with all its segments mapped.
func openFake(t *testing.T, name string) *Module {
	t.Helper()
	data := readFile(t, name)
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	m, err := newModule(bytes.NewReader(data), "/usr/lib/"+filepath.Base(name), loadMappings(ef, base, name))
	if err != nil {
		t.Fatalf("newModule(%s): %v", name, err)
	}
	return m
}

// fileSymbols returns the defined symbols of an ELF file by name, read
// independently of the code under test.
func fileSymbols(t *testing.T, name string) map[string]elf.Symbol {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(readFile(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]elf.Symbol{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF {
			out[s.Name] = s
		}
	}
	return out
}

func TestLoadBias(t *testing.T) {
	data := readFile(t, fakeLib)
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	all := loadMappings(ef, base, fakeLib)
	if len(all) < 2 {
		t.Fatalf("%s has %d PT_LOAD segments, want at least 2", fakeLib, len(all))
	}
	reversed := make([]proc.Mapping, len(all))
	for i := range all {
		reversed[len(all)-1-i] = all[i]
	}
	tests := []struct {
		name      string
		maps      []proc.Mapping
		bias      uint64
		start     uint64
		wantError bool
	}{
		{
			name:  "one r-xp mapping at offset 0",
			maps:  []proc.Mapping{{Start: base, End: base + 0x1000, Perms: "r-xp", Offset: 0, Inode: 1, Path: fakeLib}},
			bias:  base,
			start: base,
		},
		{
			name:  "every segment",
			maps:  all,
			bias:  base,
			start: base,
		},
		{
			name:  "every segment, highest first",
			maps:  reversed,
			bias:  base,
			start: base,
		},
		{
			name:  "other base",
			maps:  loadMappings(ef, 0x555555554000, fakeLib),
			bias:  0x555555554000,
			start: 0x555555554000,
		},
		{
			name:      "no segment at that file offset",
			maps:      []proc.Mapping{{Start: base, End: base + 0x1000, Perms: "r-xp", Offset: 0x100000, Inode: 1, Path: fakeLib}},
			wantError: true,
		},
		{
			name:      "no mappings",
			maps:      nil,
			wantError: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newModule(bytes.NewReader(data), fakeLib, tt.maps)
			if tt.wantError {
				if err == nil {
					t.Fatalf("newModule succeeded with bias %#x, want an error", m.Bias)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Bias != tt.bias || m.Start != tt.start {
				t.Errorf("Bias, Start = %#x, %#x; want %#x, %#x", m.Bias, m.Start, tt.bias, tt.start)
			}
		})
	}
}

func TestSymbols(t *testing.T) {
	for _, name := range []string{fakeLib, fakeStripped} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			m := openFake(t, name)
			want := fileSymbols(t, name)
			defined := append([]string{"PyGILState_Check", "Py_Version"}, RequiredSymbols...)
			for _, sym := range defined {
				s, err := m.Lookup(sym)
				if err != nil {
					t.Errorf("Lookup(%s): %v", sym, err)
					continue
				}
				w, ok := want[sym]
				if !ok {
					t.Fatalf("%s does not define %s: rebuild it with testdata/build.sh", name, sym)
				}
				if s.Addr != w.Value+base || s.Size != w.Size {
					t.Errorf("%s: Addr, Size = %#x, %d; want %#x, %d", sym, s.Addr, s.Size, w.Value+base, w.Size)
				}
				if isData := sym == "Py_Version"; s.Data != isData || s.IFunc {
					t.Errorf("%s: Data, IFunc = %v, %v; want %v, false", sym, s.Data, s.IFunc, isData)
				}
				if !m.Has(sym) {
					t.Errorf("Has(%s) = false", sym)
				}
			}
			// Undefined references, including weak ones, are not symbols
			// of the module.
			for _, sym := range []string{"PyUndefinedThing", "__cxa_finalize", "__gmon_start__", "", "NoSuchSymbol"} {
				if m.Has(sym) {
					t.Errorf("Has(%q) = true", sym)
				}
				if _, err := m.Lookup(sym); !errors.Is(err, ErrNoSymbol) {
					t.Errorf("Lookup(%q): %v, want ErrNoSymbol", sym, err)
				}
			}
			// A static function exists only in .symtab.
			if got, want := m.Has("fake_static_helper"), name == fakeLib; got != want {
				t.Errorf("Has(fake_static_helper) = %v, want %v", got, want)
			}

			ensure, _ := m.Lookup("PyGILState_Ensure")
			if got, ok := m.SymbolAt(ensure.Addr + 1); !ok || got != "PyGILState_Ensure" {
				t.Errorf("SymbolAt(PyGILState_Ensure+1) = %q, %v", got, ok)
			}
			if got, ok := m.SymbolAt(ensure.Addr + ensure.Size + 0x100000); ok {
				t.Errorf("SymbolAt(far past PyGILState_Ensure) = %q", got)
			}
			version, _ := m.Lookup("Py_Version")
			if got, ok := m.SymbolAt(version.Addr); ok {
				t.Errorf("SymbolAt(Py_Version) = %q: a data symbol is not a function", got)
			}
		})
	}
}

// SymbolAt names a static function from .symtab without a lookup first
// (a busy thread is mostly stopped in one), and only where the file has it.
func TestSymbolAtStatic(t *testing.T) {
	ef, err := elf.NewFile(bytes.NewReader(readFile(t, fakeLib)))
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := ef.Symbols()
	var want elf.Symbol
	for _, s := range syms {
		if s.Name == "fake_static_helper" {
			want = s
		}
	}
	if want.Size == 0 {
		t.Fatal("no fake_static_helper in " + fakeLib)
	}
	for _, tt := range []struct {
		file string
		ok   bool
	}{{fakeLib, true}, {fakeStripped, false}} {
		m := openFake(t, tt.file)
		for _, addr := range []uint64{want.Value + base, want.Value + base + want.Size - 1} {
			got, ok := m.SymbolAt(addr)
			if ok != tt.ok || (ok && got != "fake_static_helper") {
				t.Errorf("%s: SymbolAt(%#x) = %q, %v; want fake_static_helper: %v", tt.file, addr, got, ok, tt.ok)
			}
		}
		if got, ok := m.SymbolAt(want.Value + base + want.Size); ok && got == "fake_static_helper" {
			t.Errorf("%s: SymbolAt(just past fake_static_helper) = %q", tt.file, got)
		}
		if m.symtabRead {
			t.Errorf("%s: SymbolAt loaded .symtab into the symbol map", tt.file)
		}
	}
}

func TestSymtabOnDemand(t *testing.T) {
	m := openFake(t, fakeLib)
	if m.symtabRead {
		t.Fatal(".symtab read at load time")
	}
	if _, ok := m.dynsyms()["fake_static_helper"]; ok {
		t.Fatal("a static function is known before any lookup")
	}
	if _, ok := m.dynsyms()["PyGILState_Ensure"]; !ok {
		t.Fatal("an exported function is not known")
	}
	s, err := m.Lookup("fake_static_helper")
	if err != nil {
		t.Fatal(err)
	}
	if !m.symtabRead || s.Addr < base || s.Data {
		t.Errorf("Lookup(fake_static_helper) = %+v; .symtab read: %v", s, m.symtabRead)
	}
	if got, ok := m.SymbolAt(s.Addr); !ok || got != "fake_static_helper" {
		t.Errorf("SymbolAt(fake_static_helper) = %q, %v", got, ok)
	}
	// An exported symbol keeps its .dynsym entry.
	want := fileSymbols(t, fakeLib)["PyGILState_Ensure"]
	if s, _ := m.Lookup("PyGILState_Ensure"); s.Addr != want.Value+base {
		t.Errorf("PyGILState_Ensure at %#x after reading .symtab, want %#x", s.Addr, want.Value+base)
	}
}

func TestReadFileData(t *testing.T) {
	m := openFake(t, fakeLib)
	v, _ := m.Lookup("Py_Version")
	got, err := m.ReadFileData(v.Addr, 8)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xf0, 0x01, 0x0c, 0x03, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("ReadFileData(Py_Version) = % x, want % x", got, want)
	}
	// .bss has no file data.
	bss, _ := m.Lookup("lptrace_fake_initialized")
	if got, err := m.ReadFileData(bss.Addr, 4); err == nil {
		t.Errorf("ReadFileData(.bss) = % x, want an error", got)
	}
	for _, addr := range []uint64{0, base - 1, 1<<64 - 4} {
		if got, err := m.ReadFileData(addr, 4); err == nil {
			t.Errorf("ReadFileData(%#x) = % x, want an error", addr, got)
		}
	}
}

func TestWritable(t *testing.T) {
	m := openFake(t, fakeLib)
	if len(m.Writable) == 0 {
		t.Fatal("no writable ranges")
	}
	for _, r := range m.Writable {
		if r[0] >= r[1] || r[0] < base {
			t.Errorf("writable range [%#x, %#x) is empty or below the module", r[0], r[1])
		}
		if !m.InStaticData(r[0]) || m.InStaticData(r[1]) {
			t.Errorf("InStaticData is wrong at the bounds of [%#x, %#x)", r[0], r[1])
		}
	}
	tests := []struct {
		sym  string
		want bool
	}{
		{"lptrace_fake_counter", true},     // .data
		{"lptrace_fake_initialized", true}, // .bss
		{"Py_Version", false},              // .rodata
		{"PyGILState_Ensure", false},       // .text
	}
	for _, tt := range tests {
		s, err := m.Lookup(tt.sym)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.InStaticData(s.Addr); got != tt.want {
			t.Errorf("InStaticData(%s) = %v, want %v", tt.sym, got, tt.want)
		}
	}
	if m.InStaticData(0) || m.InStaticData(base) {
		t.Error("InStaticData is true outside the writable segment")
	}
}

func TestPadding(t *testing.T) {
	data := readFile(t, fakeLib)
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var text *elf.Prog
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			text = p
		}
	}
	if text == nil {
		t.Fatal("no executable segment")
	}
	textEnd := base + text.Vaddr + text.Memsz
	if textEnd%pageSize == 0 || pageUp(textEnd)-textEnd < 64 {
		t.Fatalf("%s has no padding after its code: rebuild it", fakeLib)
	}
	textMap := proc.Mapping{Start: base + pageDown(text.Vaddr), End: base + pageUp(text.Vaddr+text.Memsz), Perms: "r-xp", Offset: pageDown(text.Off), Inode: 1, Path: fakeLib}

	m, err := newModule(bytes.NewReader(data), fakeLib, []proc.Mapping{textMap})
	if err != nil {
		t.Fatal(err)
	}
	if m.PadStart >= m.PadEnd {
		t.Fatalf("no padding: [%#x, %#x)", m.PadStart, m.PadEnd)
	}
	if m.PadStart < textEnd || m.PadStart%64 != 0 || m.PadEnd != textMap.End {
		t.Errorf("padding [%#x, %#x), want 64-byte aligned from the end of the code (%#x) to the end of its page (%#x)",
			m.PadStart, m.PadEnd, textEnd, textMap.End)
	}
	// Nothing that is loaded lies in the padding.
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		lo, hi := base+s.Addr, base+s.Addr+s.Size
		if lo < m.PadEnd && m.PadStart < hi {
			t.Errorf("section %s [%#x, %#x) overlaps the padding [%#x, %#x)", s.Name, lo, hi, m.PadStart, m.PadEnd)
		}
	}

	// No padding unless its page is mapped executable.
	noExec := textMap
	noExec.Perms = "r--p"
	short := textMap
	short.End = textMap.End - 1
	for _, mp := range []proc.Mapping{noExec, short} {
		m, err := newModule(bytes.NewReader(data), fakeLib, []proc.Mapping{mp})
		if err != nil {
			t.Fatal(err)
		}
		if m.PadStart != 0 || m.PadEnd != 0 {
			t.Errorf("mapping %+v: padding [%#x, %#x), want none", mp, m.PadStart, m.PadEnd)
		}
	}
}

func TestLoadModule(t *testing.T) {
	// LoadModule opens the file through /proc/PID/root; this test
	// process's own root is the real one.
	abs, err := filepath.Abs(fakeLib)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(readFile(t, fakeLib)))
	if err != nil {
		t.Fatal(err)
	}
	maps := append(loadMappings(ef, base, abs), proc.Mapping{Start: 0x1000, End: 0x2000, Perms: "r-xp", Inode: 2, Path: "/other"})
	m, err := LoadModule(os.Getpid(), maps, abs)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Path != abs || !strings.HasSuffix(m.OpenPath, abs) || m.Bias != base || !m.Has("PyRun_SimpleString") {
		t.Errorf("LoadModule: Path %q, OpenPath %q, Bias %#x", m.Path, m.OpenPath, m.Bias)
	}
	if _, err := LoadModule(os.Getpid(), maps, "/not/mapped.so"); err == nil {
		t.Error("LoadModule of a file that is not mapped succeeded")
	}
}

func FuzzNewModule(f *testing.F) {
	for _, name := range []string{fakeLib, fakeStripped} {
		data := readFile(f, name)
		f.Add(data)
		for _, n := range []int{0, 4, 16, 52, 64, 120, 0x200, len(data) / 2, len(data) - 1} {
			if n < len(data) {
				f.Add(data[:n])
			}
		}
	}
	maps := []proc.Mapping{{Start: base, End: base + 0x10000, Perms: "r-xp", Offset: 0, Dev: "08:01", Inode: 1, Path: "/usr/lib/libpython3.12.so.1.0"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := newModule(bytes.NewReader(data), maps[0].Path, maps)
		if (m == nil) == (err == nil) {
			t.Fatalf("newModule = %v, %v: want a module or an error", m, err)
		}
		if err != nil {
			return
		}
		// What Find does with a module must not panic either.
		for _, name := range RequiredSymbols {
			if s, err := m.Lookup(name); err == nil && m.Has(name) {
				m.SymbolAt(s.Addr)
			}
		}
		m.pythonVersion()
		for _, r := range m.Writable {
			m.InStaticData(r[0])
		}
		m.ReadFileData(base, 4)
	})
}

// The .dynsym reader gives what debug/elf's DynamicSymbols gives, on the
// test library and on the real C library and Pythons of this machine.
func TestDynsymReader(t *testing.T) {
	files := []string{fakeLib, fakeStripped}
	for _, pattern := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/python3.11",
		os.Getenv("HOME") + "/.pyenv/versions/*/lib/libpython*.so.1.0", os.Getenv("HOME") + "/.pyenv/versions/2.7*/bin/python2.7"} {
		found, _ := filepath.Glob(pattern)
		files = append(files, found...)
	}
	for _, name := range files {
		data := readFile(t, name)
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		maps := loadMappings(ef, base, name)
		m, err := newModule(bytes.NewReader(data), name, maps)
		if err != nil {
			t.Fatalf("newModule(%s): %v", name, err)
		}
		want := &Module{Bias: m.Bias, syms: map[string]Symbol{}}
		syms, err := ef.DynamicSymbols()
		if err != nil {
			t.Fatal(err)
		}
		want.addSymbols(syms)
		got := m.dynsyms()
		if len(got) != len(want.syms) || len(got) == 0 {
			t.Errorf("%s: %d symbols, want %d", name, len(got), len(want.syms))
		}
		for n, s := range want.syms {
			if got[n] != s {
				t.Errorf("%s: %s = %+v, want %+v", name, n, got[n], s)
				break
			}
		}
	}
}

// The GNU hash lookup finds exactly what the symbol map has, for every
// exported name of the test files and of the real libraries here (each
// libpython found, the C library), and nothing for names not exported;
// SymbolAt names the same function either way.
func TestExportsMatchMap(t *testing.T) {
	files := []string{fakeLib, fakeStripped}
	libs, _ := filepath.Glob(os.ExpandEnv("$HOME/.pyenv/versions/*/lib/libpython*.so.1.0"))
	files = append(files, libs...)
	for _, f := range []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6", "/usr/bin/python3.11"} {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	for _, f := range files {
		hashed, mapped := openFake(t, f), openFake(t, f)
		if hashed.exported() == nil {
			t.Errorf("%s: no GNU hash table read", f)
			continue
		}
		all := mapped.dynsyms()
		if len(all) == 0 {
			t.Errorf("%s: no symbols", f)
		}
		n := 0
		for name, want := range all {
			got, ok := hashed.exported().lookup(hashed, name)
			if !ok || got != want {
				t.Errorf("%s: lookup(%s) = %+v, %v; the map has %+v", f, name, got, ok, want)
			}
			if n++; n%7 == 0 && !want.Data && want.Size > 0 {
				g1, ok1 := hashed.SymbolAt(want.Addr + want.Size/2)
				g2, ok2 := mapped.SymbolAt(want.Addr + want.Size/2)
				// Aliases (two names, one address) may differ in which is named.
				if ok1 != ok2 || (ok1 && all[g1].Addr != all[g2].Addr) {
					t.Errorf("%s: SymbolAt(%s+%d) = %q, %v; by the map %q, %v", f, name, want.Size/2, g1, ok1, g2, ok2)
				}
			}
		}
		for _, name := range []string{"", "NoSuchSymbol", "PyUndefinedThing", "__gmon_start__", "fake_static_helper"} {
			if s, ok := hashed.exported().lookup(hashed, name); ok {
				t.Errorf("%s: lookup(%q) = %+v, want nothing", f, name, s)
			}
		}
		if hashed.syms != nil {
			t.Errorf("%s: the symbol map was built", f)
		}
	}
}
