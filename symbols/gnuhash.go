package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// exports is a module's .dynsym and its names, raw, with the GNU hash
// table the dynamic linker looks names up in: lptrace looks up a dozen
// names per attach, which costs microseconds this way, where building a
// map of every exported symbol (libpython's 2000, libc's 3000) cost
// 0.3-0.6 ms of the attach.
type exports struct {
	syms, strs []byte
	// The hash table: buckets[hash % len] is the first symbol of a chain
	// of chain[i-symoffset], whose low bit ends it.
	nbuckets, symoffset uint32
	buckets, chain      []byte
}

// exported returns the module's raw export table, or nil when it has none
// that lptrace can read this way (not 64-bit little-endian, no .gnu.hash):
// the symbol map is used then.
func (m *Module) exported() (x *exports) {
	if m.exportsRead {
		return m.exports
	}
	m.exportsRead = true
	defer func() {
		if recover() != nil { // a malformed file
			x, m.exports = nil, nil
		}
	}()
	f := m.file
	dyn, hash := f.SectionByType(elf.SHT_DYNSYM), f.SectionByType(elf.SHT_GNU_HASH)
	if dyn == nil || hash == nil || f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB ||
		dyn.Entsize != 24 || int(dyn.Link) >= len(f.Sections) {
		return nil
	}
	syms, err := dyn.Data()
	if err != nil {
		return nil
	}
	strs, err := f.Sections[dyn.Link].Data()
	if err != nil {
		return nil
	}
	h, err := hash.Data()
	if err != nil || len(h) < 16 {
		return nil
	}
	bo := f.ByteOrder
	x = &exports{syms: syms, strs: strs, nbuckets: bo.Uint32(h), symoffset: bo.Uint32(h[4:])}
	bloomWords := uint64(bo.Uint32(h[8:]))
	start := 16 + 8*bloomWords
	end := start + 4*uint64(x.nbuckets)
	if x.nbuckets == 0 || end > uint64(len(h)) || uint64(x.symoffset)*24 > uint64(len(syms)) {
		return nil
	}
	x.buckets, x.chain = h[start:end], h[end:]
	m.exports = x
	return x
}

func gnuHash(name string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(name); i++ {
		h = h*33 + uint32(name[i])
	}
	return h
}

// lookup finds an exported symbol by name as the dynamic linker does; the
// first of its name in the table, as the symbol map has it.
func (x *exports) lookup(m *Module, name string) (s Symbol, found bool) {
	h := gnuHash(name)
	bo := m.file.ByteOrder
	i := bo.Uint32(x.buckets[4*(h%x.nbuckets):])
	if i == 0 || i < x.symoffset {
		return Symbol{}, false
	}
	for ; ; i++ {
		c := uint64(i-x.symoffset) * 4
		if c+4 > uint64(len(x.chain)) || uint64(i)*24+24 > uint64(len(x.syms)) {
			return Symbol{}, false
		}
		ch := bo.Uint32(x.chain[c:])
		if ch|1 == h|1 && x.name(bo.Uint32(x.syms[uint64(i)*24:])) == name {
			if s, ok := m.symbol(x.entry(m, i)); ok {
				return s, true
			}
		}
		if ch&1 != 0 {
			return Symbol{}, false
		}
	}
}

// funcAt finds the exported function containing addr.
func (x *exports) funcAt(m *Module, addr uint64) (name string, ok bool) {
	funcsAt(x.syms, m.file.ByteOrder, addr-m.Bias, true, func(nameOff uint32) bool {
		name = x.name(nameOff)
		return name != ""
	})
	return name, name != ""
}

// funcsAt calls found with the name offset of each function entry of syms
// (an ELF64 symbol table, raw) that contains vaddr, until found returns
// true. With anyCode, indirect and untyped symbols count as functions
// too, as in the symbol map.
func funcsAt(syms []byte, bo binary.ByteOrder, vaddr uint64, anyCode bool, found func(nameOff uint32) bool) {
	for off := 24; off+24 <= len(syms); off += 24 { // entry 0 is the null symbol
		e := syms[off : off+24]
		switch elf.ST_TYPE(e[4]) {
		case elf.STT_FUNC:
		case elf.STT_GNU_IFUNC, elf.STT_NOTYPE:
			if !anyCode {
				continue
			}
		default:
			continue
		}
		start, size := bo.Uint64(e[8:]), bo.Uint64(e[16:])
		if start == 0 || bo.Uint16(e[6:]) == uint16(elf.SHN_UNDEF) || vaddr < start || vaddr-start >= size {
			continue
		}
		if found(bo.Uint32(e)) {
			return
		}
	}
}

func (x *exports) name(off uint32) string {
	if off == 0 || uint64(off) >= uint64(len(x.strs)) {
		return ""
	}
	s := x.strs[off:]
	if end := bytes.IndexByte(s, 0); end >= 0 {
		return string(s[:end])
	}
	return ""
}

func (x *exports) entry(m *Module, i uint32) elf.Symbol {
	e := x.syms[uint64(i)*24:]
	bo := m.file.ByteOrder
	return elf.Symbol{Name: x.name(bo.Uint32(e)), Info: e[4], Other: e[5],
		Section: elf.SectionIndex(bo.Uint16(e[6:])), Value: bo.Uint64(e[8:]), Size: bo.Uint64(e[16:])}
}
