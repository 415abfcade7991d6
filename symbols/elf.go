// Package symbols finds the Python runtime and the C library in a process's
// memory and resolves their symbols to addresses in that process.
//
// Files are opened through /proc/PID/root (or /proc/PID/map_files), so a
// process in another mount namespace is read from its own file system. The
// ELF files belong to someone else: parsing them never panics.
package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/lptrace/lptrace/proc"
)

// ErrNoSymbol means a symbol is not defined in the module.
var ErrNoSymbol = errors.New("symbol not found")

// Symbol is a defined symbol of a loaded module.
type Symbol struct {
	Addr  uint64 // address in the target process
	Size  uint64
	IFunc bool // a GNU indirect function: Addr is its resolver, not the function
	Data  bool // an object, not code
}

// Module is an ELF file mapped into the target, with its symbols.
type Module struct {
	Path     string            // path as the target sees it
	OpenPath string            // path lptrace opened
	Bias     uint64            // load bias: runtime address = file vaddr + Bias
	Start    uint64            // lowest mapped address
	syms     map[string]Symbol // nil until first needed (dynsyms)
	// Padding at the end of the executable segment: bytes that are mapped
	// executable but belong to no section, so nothing ever runs them.
	PadStart, PadEnd uint64
	// Writable holds the address ranges of the module's writable segments
	// (.data, .bss): its static variables.
	Writable    [][2]uint64
	symtabRead  bool
	exports     *exports // .dynsym raw, with its hash table (exported)
	exportsRead bool
	symtab      []byte       // .symtab's raw entries, once SymbolAt needed them
	strtab      *elf.Section // its names
	file        *elf.File
	f           *os.File
}

// InStaticData reports whether addr lies in one of the module's static
// variables.
func (m *Module) InStaticData(addr uint64) bool {
	for _, r := range m.Writable {
		if addr >= r[0] && addr < r[1] {
			return true
		}
	}
	return false
}

// Lookup returns a defined symbol.
func (m *Module) Lookup(name string) (Symbol, error) {
	if s, ok := m.lookupExport(name); ok {
		return s, nil
	}
	s, ok := m.dynsyms()[name]
	if !ok && m.loadSymtab() {
		s, ok = m.syms[name]
	}
	if !ok {
		return Symbol{}, fmt.Errorf("%s in %s: %w", name, m.Path, ErrNoSymbol)
	}
	return s, nil
}

// Has reports whether the module defines name.
func (m *Module) Has(name string) bool { _, err := m.Lookup(name); return err == nil }

// SymbolAt returns the name of the function containing addr, if known:
// an exported function, else a static one from .symtab where the file has
// it. Callers treat an unknown address with caution.
func (m *Module) SymbolAt(addr uint64) (string, bool) {
	if x := m.exported(); x != nil && m.syms == nil {
		if name, ok := x.funcAt(m, addr); ok {
			return name, true
		}
		return m.staticFuncAt(addr)
	}
	for name, s := range m.dynsyms() {
		if !s.Data && addr >= s.Addr && addr < s.Addr+s.Size {
			return name, true
		}
	}
	return m.staticFuncAt(addr)
}

// staticFuncAt finds the function containing addr in .symtab by scanning
// its raw entries, read once: a busy thread is mostly stopped in static
// functions (the interpreter's own helpers), and naming one costs some
// 0.1 ms, where treating it as unknown costs a stop of the thread more.
// Only the name found is made a string.
func (m *Module) staticFuncAt(addr uint64) (name string, ok bool) {
	defer func() {
		if recover() != nil { // a malformed file
			name, ok = "", false
		}
	}()
	if m.symtab == nil {
		m.symtab = []byte{}
		sec := m.file.SectionByType(elf.SHT_SYMTAB)
		if sec == nil || m.file.Class != elf.ELFCLASS64 || sec.Entsize != 24 || int(sec.Link) >= len(m.file.Sections) {
			return "", false
		}
		data, err := sec.Data()
		if err != nil {
			return "", false
		}
		m.symtab, m.strtab = data, m.file.Sections[sec.Link]
	}
	funcsAt(m.symtab, m.file.ByteOrder, addr-m.Bias, false, func(nameOff uint32) bool {
		buf := make([]byte, 256)
		n, _ := m.strtab.ReadAt(buf, int64(nameOff))
		if end := bytes.IndexByte(buf[:n], 0); end > 0 {
			name, ok = string(buf[:end]), true
		}
		return true // the first one found, named or not
	})
	return name, ok
}

// ReadFileData reads n bytes of initialized data at runtime address addr from
// the file (not from memory): used for constants such as Py_Version.
func (m *Module) ReadFileData(addr uint64, n int) ([]byte, error) {
	vaddr := addr - m.Bias
	for _, p := range m.file.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr+uint64(n) <= p.Vaddr+p.Filesz {
			buf := make([]byte, n)
			if _, err := p.ReadAt(buf, int64(vaddr-p.Vaddr)); err != nil {
				return nil, err
			}
			return buf, nil
		}
	}
	return nil, fmt.Errorf("address %#x is not file data of %s", addr, m.Path)
}

// Close releases the file.
func (m *Module) Close() error {
	if m.f != nil {
		return m.f.Close()
	}
	return nil
}

// LoadModule opens the ELF file behind the mappings of path in process pid
// and computes its load bias and symbols.
func LoadModule(pid int, maps []proc.Mapping, filePath string) (*Module, error) {
	var first *proc.Mapping
	var mine []proc.Mapping
	for i := range maps {
		if maps[i].Path == filePath {
			mine = append(mine, maps[i])
			if first == nil || maps[i].Start < first.Start {
				first = &maps[i]
			}
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%s is not mapped in process %d", filePath, pid)
	}
	open := first.OpenPath(pid)
	f, err := os.Open(open)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filePath, err)
	}
	m, err := newModule(f, filePath, mine)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", filePath, err)
	}
	m.OpenPath = open
	return m, nil
}

// newModule parses an ELF file and places it at the given mappings. It
// recovers from any panic inside debug/elf, which can be provoked by a
// malformed file.
func newModule(r io.ReaderAt, filePath string, maps []proc.Mapping) (m *Module, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("malformed ELF file: %v", p)
		}
	}()
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	m = &Module{Path: filePath, file: ef}
	if f, ok := r.(*os.File); ok {
		m.f = f
	}
	if err := m.place(maps); err != nil {
		return nil, err
	}
	return m, nil
}

// lookupExport finds an exported symbol: in the GNU hash table while the
// symbol map is not built (most attaches never build it), else in the map.
func (m *Module) lookupExport(name string) (Symbol, bool) {
	if x := m.exported(); x != nil && m.syms == nil {
		return x.lookup(m, name)
	}
	s, ok := m.dynsyms()[name]
	return s, ok
}

// dynsyms returns the symbols, reading .dynsym the first time: only for
// the modules whose symbols are needed (not the dynamic loader's, found
// for its padding), and without debug/elf's string per symbol, which made
// reading libpython's and libc's half of an attach's first 4 ms.
func (m *Module) dynsyms() map[string]Symbol {
	if m.syms != nil {
		return m.syms
	}
	m.syms = map[string]Symbol{}
	func() {
		defer func() { recover() }() // a malformed file: no symbols
		m.readDynsym()
	}()
	return m.syms
}

func (m *Module) readDynsym() {
	sec := m.file.SectionByType(elf.SHT_DYNSYM)
	if sec == nil {
		return
	}
	if m.file.Class != elf.ELFCLASS64 || sec.Entsize != 24 || int(sec.Link) >= len(m.file.Sections) {
		if syms, err := m.file.DynamicSymbols(); err == nil {
			m.addSymbols(syms)
		}
		return
	}
	data, err := sec.Data()
	if err != nil {
		return
	}
	strs, err := m.file.Sections[sec.Link].Data()
	if err != nil {
		return
	}
	names := string(strs) // one string: each name is a slice of it
	m.syms = make(map[string]Symbol, len(data)/24)
	bo := m.file.ByteOrder
	for off := 24; off+24 <= len(data); off += 24 { // entry 0 is the null symbol
		e := data[off : off+24]
		nameOff := int(bo.Uint32(e[0:]))
		if nameOff <= 0 || nameOff >= len(names) {
			continue
		}
		end := strings.IndexByte(names[nameOff:], 0)
		if end < 0 {
			continue
		}
		m.addSymbol(elf.Symbol{Name: names[nameOff : nameOff+end], Info: e[4], Other: e[5],
			Section: elf.SectionIndex(bo.Uint16(e[6:])), Value: bo.Uint64(e[8:]), Size: bo.Uint64(e[16:])})
	}
}

var pageSize = uint64(os.Getpagesize())

func pageDown(x uint64) uint64 { return x &^ (pageSize - 1) }
func pageUp(x uint64) uint64   { return (x + pageSize - 1) &^ (pageSize - 1) }

// place computes the load bias: for the mapping at the lowest address, the
// PT_LOAD segment whose page-aligned file offset equals the mapping's offset
// gives bias = mapping start - page-aligned vaddr. ET_EXEC files are not
// relocated.
func (m *Module) place(maps []proc.Mapping) error {
	if len(maps) == 0 {
		return errors.New("no mappings")
	}
	lowest := maps[0]
	for _, mp := range maps {
		if mp.Start < lowest.Start {
			lowest = mp
		}
	}
	m.Start = lowest.Start
	if m.file.Type == elf.ET_EXEC {
		m.Bias = 0
	} else {
		found := false
		for _, p := range m.file.Progs {
			if p.Type == elf.PT_LOAD && pageDown(p.Off) == lowest.Offset {
				m.Bias = lowest.Start - pageDown(p.Vaddr)
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no PT_LOAD segment matches the mapping at file offset %#x", lowest.Offset)
		}
	}
	for _, p := range m.file.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_W != 0 {
			m.Writable = append(m.Writable, [2]uint64{m.Bias + p.Vaddr, m.Bias + p.Vaddr + p.Memsz})
		}
	}
	// The padding after the executable segment, if that page is mapped
	// executable in the target.
	for _, p := range m.file.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		end := m.Bias + p.Vaddr + max(p.Filesz, p.Memsz)
		padStart := (end + 63) &^ 63
		padEnd := pageUp(end)
		for _, mp := range maps {
			if mp.Exec() && mp.Start <= padStart && padEnd <= mp.End && padStart < padEnd {
				m.PadStart, m.PadEnd = padStart, padEnd
			}
		}
	}
	return nil
}

// addSymbols records defined symbols; the first definition of a name wins.
func (m *Module) addSymbols(syms []elf.Symbol) {
	for _, s := range syms {
		m.addSymbol(s)
	}
}

func (m *Module) addSymbol(s elf.Symbol) {
	if _, dup := m.syms[s.Name]; dup {
		return
	}
	if sym, ok := m.symbol(s); ok {
		m.syms[s.Name] = sym
	}
}

// symbol is an ELF symbol as lptrace knows it, if it is a definition.
func (m *Module) symbol(s elf.Symbol) (Symbol, bool) {
	if s.Section == elf.SHN_UNDEF || s.Value == 0 || s.Name == "" {
		return Symbol{}, false
	}
	typ := elf.ST_TYPE(s.Info)
	switch typ {
	case elf.STT_FUNC, elf.STT_OBJECT, elf.STT_GNU_IFUNC, elf.STT_NOTYPE:
	default:
		return Symbol{}, false
	}
	return Symbol{
		Addr:  s.Value + m.Bias,
		Size:  s.Size,
		IFunc: typ == elf.STT_GNU_IFUNC,
		Data:  typ == elf.STT_OBJECT,
	}, true
}

// loadSymtab adds .symtab (static functions and variables, where the file
// was not stripped) to the .dynsym symbols read at load time. It is read
// only when needed: on a big libpython it costs ten milliseconds.
// It reports whether it added anything.
func (m *Module) loadSymtab() (added bool) {
	if m.symtabRead {
		return false
	}
	m.symtabRead = true
	m.dynsyms() // .dynsym's definitions come first
	defer func() {
		if recover() != nil {
			added = false
		}
	}()
	syms, err := m.file.Symbols()
	if err != nil {
		return false
	}
	n := len(m.syms)
	m.addSymbols(syms)
	return len(m.syms) > n
}

// Version is a CPython version.
type Version struct{ Major, Minor, Micro int }

func (v Version) String() string {
	if v.Micro < 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

var (
	nameVersion = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`python(\d)\.(\d+)`) })
	// PY_VERSION as a C string, e.g. "3.8.18" or "3.13.0rc1".
	rodataVersion = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`\x00([23])\.(\d{1,2})\.(\d{1,2})(?:[abc]|rc|\+)?\d*\x00`)
	})
)

// pythonVersion works out the version of a Python runtime module: from the
// Py_Version constant (3.11+), else from the file name, else from the
// PY_VERSION string in read-only data.
func (m *Module) pythonVersion() (Version, error) {
	if s, err := m.Lookup("Py_Version"); err == nil {
		if b, err := m.ReadFileData(s.Addr, 4); err == nil {
			hex := binary.LittleEndian.Uint32(b)
			if m.file.ByteOrder == binary.BigEndian {
				hex = binary.BigEndian.Uint32(b)
			}
			return Version{int(hex >> 24), int(hex >> 16 & 0xff), int(hex >> 8 & 0xff)}, nil
		}
	}
	if sec := m.file.Section(".rodata"); sec != nil && sec.Type != elf.SHT_NOBITS {
		if data, err := sec.Data(); err == nil {
			if mm := rodataVersion().FindSubmatch(data); mm != nil {
				a, _ := strconv.Atoi(string(mm[1]))
				b, _ := strconv.Atoi(string(mm[2]))
				c, _ := strconv.Atoi(string(mm[3]))
				v := Version{a, b, c}
				if nv, ok := nameToVersion(m.Path); !ok || (nv.Major == a && nv.Minor == b) {
					return v, nil
				}
			}
		}
	}
	if v, ok := nameToVersion(m.Path); ok {
		return v, nil
	}
	return Version{}, errors.New("cannot tell the Python version")
}

func nameToVersion(p string) (Version, bool) {
	mm := nameVersion().FindStringSubmatch(path.Base(p))
	if mm == nil {
		return Version{}, false
	}
	a, _ := strconv.Atoi(mm[1])
	b, _ := strconv.Atoi(mm[2])
	return Version{a, b, -1}, true
}
