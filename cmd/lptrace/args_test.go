package main

import (
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestReorderArgs(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{
			[]string{"lptrace", "exec", "123", "--file", "x.py"},
			[]string{"lptrace", "exec", "--file", "x.py", "--", "123"},
		},
		{
			[]string{"lptrace", "exec", "--file", "x.py", "123"},
			[]string{"lptrace", "exec", "--file", "x.py", "--", "123"},
		},
		{
			[]string{"lptrace", "exec", "123", "code", "--timeout", "5s"},
			[]string{"lptrace", "exec", "--timeout", "5s", "--", "123", "code"},
		},
		{
			[]string{"lptrace", "exec", "--", "123", "-"},
			[]string{"lptrace", "exec", "--", "123", "-"},
		},
		{
			// "-" (stdin) is an argument, not an option.
			[]string{"lptrace", "exec", "123", "-"},
			[]string{"lptrace", "exec", "--", "123", "-"},
		},
		{
			// After "--", options are arguments.
			[]string{"lptrace", "exec", "123", "--", "--raw"},
			[]string{"lptrace", "exec", "--", "123", "--raw"},
		},
		{
			[]string{"lptrace", "exec", "-f", "x.py", "123"},
			[]string{"lptrace", "exec", "-f", "x.py", "--", "123"},
		},
		{
			// With "=", the value is in the same argument.
			[]string{"lptrace", "exec", "123", "--file=x.py", "--timeout=1s"},
			[]string{"lptrace", "exec", "--file=x.py", "--timeout=1s", "--", "123"},
		},
		{
			// Boolean options take no value.
			[]string{"lptrace", "exec", "--raw", "123", "-v", "code"},
			[]string{"lptrace", "exec", "--raw", "-v", "--", "123", "code"},
		},
		{
			// An option value that looks like an option.
			[]string{"lptrace", "exec", "123", "--file", "-"},
			[]string{"lptrace", "exec", "--file", "-", "--", "123"},
		},
		{
			[]string{"lptrace", "exec", "--verbose"},
			[]string{"lptrace", "exec", "--verbose"},
		},
		{
			[]string{"lptrace", "exec"},
			[]string{"lptrace", "exec"},
		},
		{
			[]string{"lptrace", "--help"},
			[]string{"lptrace", "--help"},
		},
		{
			[]string{"lptrace", "--version"},
			[]string{"lptrace", "--version"},
		},
		{
			[]string{"lptrace", "--help", "exec", "1", "--raw"},
			[]string{"lptrace", "--help", "exec", "--raw", "--", "1"},
		},
		{
			[]string{"lptrace", "--", "exec", "1", "--raw"},
			[]string{"lptrace", "--", "exec", "1", "--raw"},
		},
		{
			// An unknown command is left as it is.
			[]string{"lptrace", "frobnicate", "123", "--file", "x.py"},
			[]string{"lptrace", "frobnicate", "123", "--file", "x.py"},
		},
		{
			[]string{"lptrace"},
			[]string{"lptrace"},
		},
		{nil, nil},
	}
	for _, tt := range tests {
		app := newApp(io.Discard, io.Discard)
		in := append([]string(nil), tt.in...)
		got := reorderArgs(app, in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("reorderArgs(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		if !reflect.DeepEqual(in, tt.in) {
			t.Errorf("reorderArgs(%q) changed its argument to %q", tt.in, in)
		}
	}
}

// TestReorderArgsParse runs the reordered arguments through urfave/cli,
// with the exec command's action replaced, to check what exec receives.
func TestReorderArgsParse(t *testing.T) {
	type parsed struct {
		file    string
		timeout time.Duration
		raw     bool
		args    []string
	}
	tests := []struct {
		in   string
		want parsed
	}{
		{"exec 123 --file x.py", parsed{"x.py", 10 * time.Second, false, []string{"123"}}},
		{"exec 123 code --timeout 5s --raw", parsed{"", 5 * time.Second, true, []string{"123", "code"}}},
		{"exec 123 -", parsed{"", 10 * time.Second, false, []string{"123", "-"}}},
		{"exec -- 123 --raw", parsed{"", 10 * time.Second, false, []string{"123", "--raw"}}},
		{"exec --raw 123", parsed{"", 10 * time.Second, true, []string{"123"}}},
	}
	for _, tt := range tests {
		app := newApp(io.Discard, io.Discard)
		var got parsed
		app.Command("exec").Action = func(c *cli.Context) error {
			got = parsed{c.String("file"), durationOf(c, "timeout"), c.Bool("raw"), c.Args().Slice()}
			return nil
		}
		args := append([]string{"lptrace"}, strings.Fields(tt.in)...)
		if err := app.Run(reorderArgs(app, args)); err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: exec got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// FuzzReorderArgs: whatever the command line, reordering it never panics
// (an option missing its value, last, did: lptrace -p), keeps the program
// name first and leaves its input alone.
func FuzzReorderArgs(f *testing.F) {
	for _, seed := range []string{"-p", "-e", "-p 1 -S", "-p 1 --color", "exec", "exec 1 --file",
		"-- python3 app.py", "attach --duration", "-c -p 12 -- x", "stack -- --", "-o"} {
		f.Add(seed)
	}
	app := newApp(io.Discard, io.Discard)
	f.Fuzz(func(t *testing.T, line string) {
		in := append([]string{"lptrace"}, strings.Fields(line)...)
		keep := append([]string(nil), in...)
		out := reorderArgs(app, in)
		if len(out) == 0 || out[0] != "lptrace" {
			t.Fatalf("reorderArgs(%q) = %q", in, out)
		}
		if !reflect.DeepEqual(in, keep) {
			t.Fatalf("reorderArgs changed its argument to %q", in)
		}
	})
}

// --duration and --timeout take Go durations and plain seconds, and refuse
// zero, negative and unreadable values (--duration -1s traced forever).
func TestDurationValue(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "0.5": 500 * time.Millisecond,
		"1.5s": 1500 * time.Millisecond, "300ms": 300 * time.Millisecond, "2m": 2 * time.Minute} {
		var v durationValue
		if err := v.Set(in); err != nil || v.d != want {
			t.Errorf("%q: %v, %v; want %v", in, v.d, err, want)
		}
	}
	for _, in := range []string{"0", "0s", "-1s", "-3", "abc", "", "NaN", "Inf", "1e400", "1e12"} {
		var v durationValue
		if err := v.Set(in); err == nil {
			t.Errorf("%q accepted as %v", in, v.d)
		}
	}
}

func TestSplitAttached(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	got := splitAttached(app, strings.Fields("lptrace -s40 -p1234 -ofile -etrace=f -tt -qq -ttt -a -v -- python3 -s40 x.py"))
	want := strings.Fields("lptrace -s 40 -p 1234 -o file -e trace=f -tt -qq -ttt -a -v -- python3 -s40 x.py")
	if !slices.Equal(got, want) {
		t.Errorf("splitAttached:\n got %q\nwant %q", got, want)
	}
	for msg, want := range map[string]string{
		"flag provided but not defined: -x":    "-x is strace's, not lptrace's",
		"flag provided but not defined: -jsn":  "did you mean --json?",
		"flag provided but not defined: -Q":    "-Q is not an lptrace option",
		"flag provided but not defined: -tttt": "did you mean -ttt?",
		"something else":                       "something else",
	} {
		if got := flagHint(app, msg); !strings.Contains(got, want) {
			t.Errorf("flagHint(%q) = %q, want %q in it", msg, got, want)
		}
	}
}
