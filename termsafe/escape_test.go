package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		in           string
		keepNewlines bool
		want         string
	}{
		{"", false, ""},
		{"", true, ""},
		{"hello, world", false, "hello, world"},
		{"caf\u00e9 \u65e5\u672c \U0001F40D", false, "caf\u00e9 \u65e5\u672c \U0001F40D"},
		{"\u00a0nbsp \u00ff", false, "\u00a0nbsp \u00ff"},
		{"\ufffd", false, "\ufffd"}, // a real U+FFFD is valid UTF-8

		// Terminal escape sequences.
		{"\x1b[31mred\x1b[0m", false, `\x1b[31mred\x1b[0m`},
		{"\x1b]0;title\x07", false, `\x1b]0;title\x07`},
		{"\x1b]52;c;ZXZpbA==\x1b\\", true, `\x1b]52;c;ZXZpbA==\x1b\`},
		{"bell\a", false, `bell\x07`},
		{"back\bspace", false, `back\x08space`},
		{"\x00nul", false, `\x00nul`},
		{"cr\r", true, `cr\x0d`},
		{"del\x7f", false, `del\x7f`},

		// C1 controls as UTF-8 runes; 0x9b is CSI.
		{"\u009b31m", false, `\u009b31m`},
		{"\u0080\u009f", false, `\u0080\u009f`},

		// Invalid UTF-8, byte by byte.
		{"\xff", false, `\xff`},
		{"a\xffb", true, `a\xffb`},
		{"\x9b31m", false, `\x9b31m`}, // a bare C1 byte is not UTF-8
		{"\xc3", false, `\xc3`},       // truncated sequence
		{"\xc3\x28", false, `\xc3(`},
		{"\xed\xa0\x80", false, `\xed\xa0\x80`}, // a surrogate
		{"\xc0\xaf", false, `\xc0\xaf`},         // overlong "/"
		{"\xf4\x90\x80\x80", false, `\xf4\x90\x80\x80`},

		// Bidirectional controls.
		{"abc\u202edef", false, `abc\u202edef`},
		{"\u202a\u202b\u202c\u202d", false, `\u202a\u202b\u202c\u202d`},
		{"\u2066\u2067\u2068\u2069", false, `\u2066\u2067\u2068\u2069`},
		{"\u200e\u200f", false, `\u200e\u200f`}, // LRM, RLM
		{"\u2029\u206a\u200d", false, "\u2029\u206a\u200d"},

		// Newlines and tabs.
		{"a\nb\tc", true, "a\nb\tc"},
		{"a\nb\tc", false, `a\x0ab\x09c`},
		{"\n\n", true, "\n\n"},
		{"\r\n", true, "\\x0d\n"},
		{"\v\f", true, `\x0b\x0c`},
	}
	for _, tt := range tests {
		if got := Escape([]byte(tt.in), tt.keepNewlines); got != tt.want {
			t.Errorf("Escape(%q, %v) = %q, want %q", tt.in, tt.keepNewlines, got, tt.want)
		}
	}
}

// checkSafe reports what is unsafe to print in out.
func checkSafe(out string, keepNewlines bool) string {
	if !utf8.ValidString(out) {
		return "invalid UTF-8"
	}
	for _, r := range out {
		switch {
		case (r == '\n' || r == '\t') && keepNewlines:
		case r < 0x20 || r == 0x7f:
			return "C0 control or DEL"
		case r >= 0x80 && r < 0xa0:
			return "C1 control"
		case r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return "bidirectional control"
		}
	}
	return ""
}

func FuzzEscape(f *testing.F) {
	f.Add([]byte("\x1b[31mred\x1b[0m\n"), true)
	f.Add([]byte("\u009b\u202e\xff\xc3\t"), false)
	f.Add([]byte("caf\u00e9\r\n"), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, in []byte, keepNewlines bool) {
		out := Escape(in, keepNewlines)
		if problem := checkSafe(out, keepNewlines); problem != "" {
			t.Fatalf("Escape(%q, %v) = %q: %s", in, keepNewlines, out, problem)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 && !(keepNewlines && (c == '\n' || c == '\t')) {
				t.Fatalf("Escape(%q, %v) = %q: byte %#x", in, keepNewlines, out, c)
			}
		}
		// Text that is already safe is unchanged; escaping never loses
		// anything.
		if checkSafe(string(in), keepNewlines) == "" && out != string(in) {
			t.Fatalf("Escape(%q, %v) = %q: changed safe text", in, keepNewlines, out)
		}
		if len(out) < len(in) {
			t.Fatalf("Escape(%q, %v) = %q: shorter than the input", in, keepNewlines, out)
		}
		if keepNewlines && strings.Count(out, "\n") != strings.Count(string(in), "\n") {
			t.Fatalf("Escape(%q, true) = %q: newlines lost", in, out)
		}
	})
}
