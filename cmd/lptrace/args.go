package main

import (
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
