package session

import "testing"

func TestFnmatchRegexp(t *testing.T) {
	// What Python's fnmatch.fnmatchcase says of each.
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"get", "get", true}, {"get", "Queue.get", false}, {"*.get", "Queue.get", true}, {"g?t", "gat", true},
		{"[fg]oo", "goo", true}, {"[!fg]oo", "goo", false}, {"[!fg]oo", "zoo", true}, {"[]]x", "]x", true},
		{"[!]]x", "]x", false}, {"a.b", "axb", false}, {"a+b", "a+b", true}, {"x[a-c]", "xb", true},
		{"[[]x", "[x", true}, {"*", "a\nb", true}, {`a\b`, `a\b`, true}, {"[^a]", "^", true}, {"[^a]", "b", false},
	} {
		re := fnmatchRegexp(c.pat)
		if re == nil || re.MatchString(c.name) != c.want {
			t.Errorf("fnmatch(%q, %q): want %v (%v)", c.name, c.pat, c.want, re)
		}
	}
	for _, bad := range []string{"[", "[a-", "x[!", "a]b[", "[]"} {
		if CheckPattern(bad) == nil {
			t.Errorf("CheckPattern(%q) took it", bad)
		}
	}
	for _, good := range []string{"[!]]", "a]b", "*.get", "[[]"} {
		if err := CheckPattern(good); err != nil {
			t.Errorf("CheckPattern(%q): %v", good, err)
		}
	}
}
