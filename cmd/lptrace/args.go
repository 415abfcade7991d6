package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs moves a command's options in front of its positional
// arguments, because urfave/cli v2 stops parsing options at the first
// positional one: `lptrace exec 1234 --file x.py` then means the same as
// `lptrace exec --file x.py 1234`. Everything after `--` stays positional.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// Global options up to the command name.
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		out = append(out, args[i])
		if takesValue(app.Flags, args[i]) {
			i++
			if i < len(args) {
				out = append(out, args[i])
			}
		}
		i++
	}
	// (An option missing its value, last: the parser says so.)
	i = min(i, len(args))
	if i >= len(args) || args[i] == "--" {
		if i < len(args) && i+1 < len(args) {
			if app.Metadata == nil {
				app.Metadata = map[string]any{}
			}
			app.Metadata["launch"] = true // lptrace [options] -- program args
		}
		return append(out, args[i:]...)
	}
	cmd := app.Command(args[i])
	out = append(out, args[i])
	i++
	if cmd == nil {
		return append(out, args[i:]...)
	}
	var flags, positional []string
	dashdash := false
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			dashdash = true
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			if takesValue(cmd.Flags, a) {
				if i+1 >= len(args) {
					// Missing value: leave it last so that the parser says so.
					return append(out, flags...)
				}
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, flags...)
	if dashdash || len(positional) > 0 {
		out = append(out, "--")
	}
	return append(out, positional...)
}

// takesValue reports whether the option arg (without "=value") needs the
// next argument as its value.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				d, ok := f.(cli.DocGenerationFlag)
				return ok && d.TakesValue()
			}
		}
	}
	return false
}

// allFlags are the flags of the app and of its commands.
func allFlags(app *cli.App) []cli.Flag {
	flags := append([]cli.Flag(nil), app.Flags...)
	for _, c := range app.Commands {
		flags = append(flags, c.Flags...)
	}
	return flags
}

// isFlag tells whether name (without dashes) names a flag.
func isFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// splitAttached splits strace's attached values, -s40, -ofile, -p1234,
// -etrace=x, into the option and its value, up to "--" (after it come the
// program's own arguments). A single-dash word that is a flag itself
// (-tt, -qq) stays.
func splitAttached(app *cli.App, args []string) []string {
	flags := allFlags(app)
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if i > 0 && len(a) > 2 && a[0] == '-' && a[1] != '-' && !strings.Contains(a[:2], "=") &&
			!isFlag(flags, strings.SplitN(a[1:], "=", 2)[0]) && takesValue(flags, a[:2]) {
			out = append(out, a[:2], a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}

// straceOnly says, of strace's options that lptrace has no counterpart
// for, what to do instead.
var straceOnly = map[string]string{
	"x":  "lptrace always escapes non-printable characters; values show as Python's repr()",
	"xx": "lptrace always escapes non-printable characters; values show as Python's repr()",
	"y":  "descriptors are system calls' business: strace -y -p PID shows them",
	"yy": "descriptors are system calls' business: strace -y -p PID shows them",
	"i":  "each line ends with the call's file and line",
	"w":  "-c's table shows each function's total and own time",
	"P":  "to trace the functions of one file, give its path as a pattern: -e '/path/to/file.py'",
	"X":  "lptrace has no constants to decode",
	"n":  "Python calls have no numbers",
	"b":  "-f follows forks; a program that execs leaves the hook behind",
	"D":  "lptrace is not a parent of the program it attaches to",
	"I":  "Ctrl-C detaches; the program runs on",
	"O":  "lptrace's cost is measured, not subtracted: docs/performance.md",
	"U":  "-c's table has fixed columns: -S sorts it",
}

// flagHint adds to "flag provided but not defined: -x" what to do instead:
// strace's nearest habit, or the lptrace option of the nearest spelling.
func flagHint(app *cli.App, msg string) string {
	const undefined = "flag provided but not defined: -"
	name, ok := strings.CutPrefix(msg, undefined)
	if !ok || name == "" {
		return msg
	}
	if hint, ok := straceOnly[name]; ok {
		return fmt.Sprintf("-%s is strace's, not lptrace's: %s", name, hint)
	}
	best, dist := "", 3
	if len(name) == 1 {
		dist = 0 // (every one-letter option is one edit away)
	}
	for _, f := range allFlags(app) {
		for _, n := range f.Names() {
			if d := editDistance(name, n); d < dist {
				best, dist = n, d
			}
		}
	}
	if best == "" {
		return fmt.Sprintf("-%s is not an lptrace option", name)
	}
	dash := "-"
	if len(best) > 1 && best != "tt" && best != "ttt" && best != "qq" {
		dash = "--"
	}
	return fmt.Sprintf("-%s is not an lptrace option (did you mean %s%s?)", name, dash, best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
