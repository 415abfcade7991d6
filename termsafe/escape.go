// Package termsafe makes text that comes from a traced process safe to print
// on a terminal: the target is untrusted, and an escape sequence in a
// function name or in output must not reach lptrace's terminal.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether a terminal may act on r instead of showing it:
// a C0 control (newline and tab too: whether they may stay is the
// caller's choice), DEL, a C1 control, or a bidirectional formatting
// character, which reorders the text around it (the marks U+200E and
// U+200F, the embeddings and overrides U+202A-U+202E, the isolates
// U+2066-U+2069). Escape and report's JSON writer both escape these.
func Unsafe(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 ||
		r == 0x200e || r == 0x200f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// Escape returns s with invalid UTF-8 and the runes Unsafe names (but
// newline and tab if keepNewlines) written as \xNN (bytes, C0 controls,
// DEL) or \uNNNN.
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
		case r < 0x80 && Unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case Unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}
