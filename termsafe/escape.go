// Package termsafe makes text that comes from a traced process safe to print
// on a terminal: the target is untrusted, and an escape sequence in a
// function name or in output must not reach lptrace's terminal.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Escape returns s with control characters (C0 except newline and tab, DEL,
// C1), invalid UTF-8 and bidirectional overrides written as \xNN or \uNNNN.
func Escape(s []byte, keepNewlines bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case (r == '\n' || r == '\t') && keepNewlines:
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}
