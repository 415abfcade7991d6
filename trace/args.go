package trace

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

var errArgsRecord = errors.New("bad values record")

// argsRecord decodes a G record: the arguments of a call, or a value
// returned, as the hook's machine code wrote them
// (hook/asm/native_args_amd64.s), small builtins only. It returns the
// value id and the same text as the Python callback makes of them
// (hook/values.py): for a call name=repr for each argument, tab-separated;
// for a return the value's repr.
func argsRecord(p *Process, data []byte) (uint64, string, error) {
	if len(data) < 20 {
		return 0, "", errArgsRecord
	}
	id := binary.LittleEndian.Uint64(data)
	word := binary.LittleEndian.Uint64(data[8:])
	r := valueReader{p: p, data: data[20:], budget: int(binary.LittleEndian.Uint32(data[16:]))}
	most := max(4*r.budget, 128)
	var names []string
	if c := p.codes[word&0xffffffff]; c != nil {
		names = c.ArgNames
	}
	call := Kind(word>>56) == Call
	var b strings.Builder
	for i := 0; len(r.data) > 0; i++ {
		s, err := r.value(0)
		if err != nil {
			return 0, "", err
		}
		if len(s) > most && utf8.RuneCountInString(s) > most { // (a type's name may be UTF-8)
			s = string([]rune(s)[:most]) + "..."
		}
		if !call {
			if len(r.data) > 0 {
				return 0, "", errArgsRecord // one value only
			}
			return id, s, nil
		}
		if i > 0 {
			b.WriteByte('\t')
		}
		if i < len(names) {
			b.WriteString(names[i])
		} else {
			b.WriteString("?")
		}
		b.WriteByte('=')
		b.WriteString(s)
	}
	return id, b.String(), nil
}

// valueReader reads the values of a G record.
type valueReader struct {
	p      *Process
	data   []byte
	budget int
}

func (r *valueReader) word() (uint64, bool) {
	if len(r.data) < 8 {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(r.data)
	r.data = r.data[8:]
	return v, true
}

// value is the next value's repr(), as hook/values.py's one() makes it at
// DEPTH (tuples hold no tuples here).
func (r *valueReader) value(depth int) (string, error) {
	v, ok := r.word()
	if !ok || v>>63 == 0 {
		return "", errArgsRecord
	}
	payload := v & (1<<56 - 1)
	switch tag := v >> 56 & 0x7f; tag {
	case 5:
		f, ok := r.word()
		if !ok {
			return "", errArgsRecord
		}
		return floatRepr(math.Float64frombits(f)), nil
	case 6, 7:
		if len(r.data) < 4 {
			return "", errArgsRecord
		}
		kept := int(binary.LittleEndian.Uint32(r.data))
		if kept > len(r.data)-4 {
			return "", errArgsRecord
		}
		s := textRepr(r.data[4:4+kept], tag == 7)
		if payload > uint64(kept) {
			s += "..."
		}
		r.data = r.data[4+kept:]
		return s, nil
	case 8:
		t, ok := r.word()
		if !ok {
			return "", errArgsRecord
		}
		name, ok := r.p.types[t]
		if !ok {
			name = "?"
		}
		return "<" + name + " at 0x" + strconv.FormatUint(payload, 16) + ">", nil
	case 9:
		if depth > 0 {
			return "", errArgsRecord
		}
		// values.py: items until one starts past the budget or the 16th.
		var parts []string
		size, cut := 0, false
		for i := uint64(0); i < min(payload, 16); i++ { // (the record has these)
			s, err := r.value(depth + 1)
			if err != nil {
				return "", err
			}
			if cut = cut || size > r.budget; !cut {
				parts = append(parts, s)
				size += len(s) + 2
			}
		}
		if cut || payload > 16 {
			parts = append(parts, "...")
		}
		if len(parts) == 1 {
			return "(" + parts[0] + ",)", nil
		}
		return "(" + strings.Join(parts, ", ") + ")", nil
	default:
		if s, ok := inlineValue(v); ok {
			return s, nil
		}
		return "", errArgsRecord
	}
}

// textRepr is repr() of an ASCII str (or, bytes, of a bytes object).
func textRepr(s []byte, isBytes bool) string {
	quote := byte('\'')
	if strings.IndexByte(string(s), '\'') >= 0 && strings.IndexByte(string(s), '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	if isBytes {
		b.WriteByte('b')
	}
	b.WriteByte(quote)
	const hex = "0123456789abcdef"
	for _, c := range s {
		switch {
		case c == quote || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < ' ' || c >= 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// floatRepr is repr() of a float: the shortest digits that read back the
// same, positional from 1e-4 up to below 1e16, else with an exponent of at
// least two digits.
func floatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, exps, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(exps)
	digits := strings.Replace(mant, ".", "", 1)
	if f == 0 {
		return sign + "0.0"
	}
	decpt := exp + 1 // the point's place after the first digit
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			return sign + digits[:decpt] + "." + digits[decpt:]
		}
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	es := "+"
	if exp < 0 {
		es, exp = "-", -exp
	}
	if exp < 10 {
		es += "0"
	}
	return sign + m + "e" + es + strconv.Itoa(exp)
}
