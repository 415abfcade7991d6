package hook

import (
	"bytes"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"sync"
	"unsafe"
)

// The tracing hook's parts compiled by each Python version
// (precompile.sh): the target loads them with marshal instead of compiling
// their source, which took it 9-14 ms with the GIL held at every attach.
//
//go:embed precompiled
var precompiledFiles embed.FS

// precompiled is one version's file: its bytecode magic number and each
// part's marshal data with the checksum of the source it was made from.
type precompiled struct {
	python string // "3.11.7", the interpreter that made it
	magic  []byte
	parts  map[string]compiledPart
}

type compiledPart struct {
	sum  uint32 // CRC-32: it detects a stale file, it guards against no adversary
	code []byte
}

var (
	precompiledMu    sync.Mutex
	precompiledCache = map[string]*precompiled{}
)

// precompiledFor returns the parts compiled by Python version ("3.11"),
// or nil when there are none.
func precompiledFor(version string) *precompiled {
	precompiledMu.Lock()
	defer precompiledMu.Unlock()
	if pc, ok := precompiledCache[version]; ok {
		return pc
	}
	var pc *precompiled
	if data, err := precompiledFiles.ReadFile("precompiled/" + version + ".bin"); err == nil {
		pc, _ = parsePrecompiled(data)
	}
	precompiledCache[version] = pc
	return pc
}

func parsePrecompiled(data []byte) (*precompiled, error) {
	line := func() string { // "" at the end
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return ""
		}
		l := string(data[:i])
		data = data[i+1:]
		return l
	}
	var pc precompiled
	if l := line(); l != "lptrace precompiled 2" {
		return nil, fmt.Errorf("not a precompiled file (%q)", l)
	}
	if _, err := fmt.Sscanf(line(), "python %s %s", new(string), &pc.python); err != nil {
		return nil, fmt.Errorf("bad python line: %v", err)
	}
	var magic string
	if _, err := fmt.Sscanf(line(), "magic %s", &magic); err != nil {
		return nil, fmt.Errorf("bad magic line: %v", err)
	}
	var err error
	if pc.magic, err = hex.DecodeString(magic); err != nil || len(pc.magic) == 0 {
		return nil, fmt.Errorf("bad magic %q", magic)
	}
	pc.parts = map[string]compiledPart{}
	for len(data) > 0 {
		var name, sum string
		var n int
		if _, err := fmt.Sscanf(line(), "part %s %s %d", &name, &sum, &n); err != nil {
			return nil, fmt.Errorf("bad part line: %v", err)
		}
		var p compiledPart
		s, err := hex.DecodeString(sum)
		if err != nil || len(s) != 4 {
			return nil, fmt.Errorf("part %s: bad checksum %q", name, sum)
		}
		p.sum = binary.BigEndian.Uint32(s)
		if n < 0 || n+1 > len(data) || data[n] != '\n' {
			return nil, fmt.Errorf("part %s: bad length %d", name, n)
		}
		p.code, data = data[:n], data[n+1:]
		pc.parts[name] = p
	}
	return &pc, nil
}

// checksum is the CRC-32 of a part's source, computed once per string
// (strings are immutable: the same bytes at the same place are the same).
func checksum(s string) uint32 {
	key := stringKey{unsafe.StringData(s), len(s)}
	if v, ok := checksums.Load(key); ok {
		return v.(uint32)
	}
	sum := crc32.ChecksumIEEE([]byte(s))
	checksums.Store(key, sum)
	return sum
}

type stringKey struct {
	p *byte
	n int
}

var checksums sync.Map // stringKey -> CRC-32

// Prepare reads the parts precompiled by Python version ("3.11") and
// checksums the sources, ahead of TraceInstall: an attach calls it in the
// background as soon as it knows the version.
func Prepare(version string) {
	if precompiledFor(version) != nil {
		for _, src := range []string{commonSource, valuesSource, filterSource, threadsSource, nativeCodeSource, nativeSource, traceSource, loadSource} {
			checksum(src)
		}
	}
}

// codesFor returns the marshal data of each named part, or nil unless
// every part is there and made from exactly the source given: a stale file
// (a part edited since precompile.sh ran) is never used.
func (pc *precompiled) codesFor(names, sources []string) [][]byte {
	if pc == nil {
		return nil
	}
	codes := make([][]byte, len(names))
	for i, name := range names {
		p, ok := pc.parts[name]
		if !ok || p.sum != checksum(sources[i]) {
			return nil
		}
		codes[i] = p.code
	}
	return codes
}
