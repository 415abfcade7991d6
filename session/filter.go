package session

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/trace"
)

// CheckPattern refuses a pattern that Python's fnmatch would take with
// its "[" as a plain character, which is never what was meant: a "[" with
// no "]" to close it (one right after "[" or "[!" belongs to the set).
func CheckPattern(p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] != '[' {
			continue
		}
		end := setEnd(p, i)
		if end < 0 {
			return fmt.Errorf("the [ at %d is never closed (write [[] for a literal [)", i+1)
		}
		i = end
	}
	return nil
}

// setEnd is the index of the "]" that closes the set opened by the "[" at
// i (one right after "[" or "[!" belongs to the set), or -1.
func setEnd(p string, i int) int {
	j := i + 1
	if j < len(p) && p[j] == '!' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	if k := strings.IndexByte(p[j:], ']'); k >= 0 {
		return j + k
	}
	return -1
}

// fnmatchRegexp is Python's fnmatch.translate of a pattern CheckPattern
// took: *, ?, [set] and [!set], anchored at both ends, case-sensitive.
func fnmatchRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			end := setEnd(p, i)
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			set := p[i+1 : end]
			b.WriteByte('[')
			if strings.HasPrefix(set, "!") {
				b.WriteByte('^')
				set = set[1:]
			}
			b.WriteString(strings.NewReplacer(`\`, `\\`, `[`, `\[`, `]`, `\]`, `^`, `\^`).Replace(set))
			b.WriteByte(']')
			i = end
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil // (a range Go refuses, z-a: Python refuses it too)
	}
	return re
}

// unmatched returns the positive -e patterns that no function the hook
// defined matches (as hook/filter.py matches them: the file for a pattern
// with a /, else module.qualname, qualname, name or module).
func unmatched(filters []hook.Filter, dec *trace.Decoder) []string {
	var out []string
	for _, f := range filters {
		if f.Exclude {
			continue
		}
		re := fnmatchRegexp(f.Pattern)
		if re == nil {
			continue
		}
		path := strings.Contains(f.Pattern, "/")
		hit := false
		dec.EachCode(func(c *trace.Code) {
			if hit {
				return
			}
			if path {
				hit = re.MatchString(c.File)
				return
			}
			name := c.Name[strings.LastIndexByte(c.Name, '.')+1:]
			hit = re.MatchString(c.Name) || re.MatchString(name) ||
				(c.Module != "" && (re.MatchString(c.Module+"."+c.Name) || re.MatchString(c.Module)))
		})
		if !hit {
			out = append(out, f.Pattern)
		}
	}
	return out
}
