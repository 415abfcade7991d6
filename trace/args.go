package trace

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// argsRecord decodes a G record: the arguments of a call as the hook's
// machine code wrote them (hook/asm/native_args_amd64.s), small builtins
// only. It returns the value id and the same text as the Python callback
// makes of them: name=repr for each, tab-separated, repr() cut as
// hook/values.py cuts it.
func argsRecord(p *Process, data []byte) (uint64, string, error) {
	bad := fmt.Errorf("bad arguments record")
	if len(data) < 20 {
		return 0, "", bad
	}
	id := binary.LittleEndian.Uint64(data)
	word := binary.LittleEndian.Uint64(data[8:])
	budget := int(binary.LittleEndian.Uint32(data[16:]))
	data = data[20:]
	var names []string
	if c := p.codes[word&0xffffffff]; c != nil {
		names = c.ArgNames
	}
	most := max(4*budget, 128)
	var b strings.Builder
	for i := 0; len(data) > 0; i++ {
		if len(data) < 8 {
			return 0, "", bad
		}
		v := binary.LittleEndian.Uint64(data)
		data = data[8:]
		if v>>63 == 0 {
			return 0, "", bad
		}
		var r string
		switch tag := v >> 56 & 0x7f; tag {
		case 5:
			if len(data) < 8 {
				return 0, "", bad
			}
			r = floatRepr(math.Float64frombits(binary.LittleEndian.Uint64(data)))
			data = data[8:]
		case 6, 7:
			if len(data) < 4 {
				return 0, "", bad
			}
			kept := int(binary.LittleEndian.Uint32(data))
			if kept > len(data)-4 {
				return 0, "", bad
			}
			r = textRepr(data[4:4+kept], tag == 7)
			if v&(1<<56-1) > uint64(kept) {
				r += "..."
			}
			data = data[4+kept:]
		case 8:
			if len(data) < 8 {
				return 0, "", bad
			}
			name, ok := p.types[binary.LittleEndian.Uint64(data)]
			if !ok {
				name = "?"
			}
			r = "<" + name + " at 0x" + strconv.FormatUint(v&(1<<56-1), 16) + ">"
			data = data[8:]
		default:
			var ok bool
			if r, ok = inlineValue(v); !ok {
				return 0, "", bad
			}
		}
		if len(r) > most {
			r = r[:most] + "..."
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
		b.WriteString(r)
	}
	return id, b.String(), nil
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
