package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/session"
	"github.com/urfave/cli/v2"
)

// traceFlags are the options of attach, of `lptrace -p`, and of launch mode,
// named after strace's where strace has one.
func traceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the trace to `FILE` instead of stderr"},
		durationFlag("duration", 0, "detach `DURATION` after the hook started (default: until Ctrl-C)"),
		durationFlag("timeout", 10*time.Second, "give up if no thread reaches a safe point within `DURATION`"),
		&cli.StringSliceFlag{Name: "filter", Aliases: []string{"e"}, Usage: "trace only functions matching `PATTERN` (name, module.qualname, module or file path; globs; '!' excludes; repeatable)"},
		&cli.BoolFlag{Name: "no-stdlib", Usage: "hide functions of the standard library and site-packages"},
		&cli.BoolFlag{Name: "t", Usage: "prefix each line with the time of day"},
		&cli.BoolFlag{Name: "tt", Usage: "... with microseconds"},
		&cli.BoolFlag{Name: "ttt", Usage: "... as seconds since the epoch"},
		&cli.BoolFlag{Name: "r", Usage: "prefix each line with the time since the previous one"},
		&cli.BoolFlag{Name: "T", Usage: "show the time spent in each call, at its return: <seconds>"},
		&cli.BoolFlag{Name: "args", Aliases: []string{"a"}, Usage: "show the arguments of each call"},
		&cli.BoolFlag{Name: "ret", Usage: "show each return value (= value), or exception (= ! Error(...))"},
		&cli.BoolFlag{Name: "Z", Usage: "show only calls that ended in an exception"},
		&cli.BoolFlag{Name: "z", Usage: "show only calls that returned normally (with the value returned)"},
		&cli.BoolFlag{Name: "k", Usage: "show the callers of each call, innermost first (who calls this?)"},
		&cli.BoolFlag{Name: "q", Usage: "quiet: no attached, started and detached lines"},
		&cli.BoolFlag{Name: "qq", Usage: "... and no exit lines (+++ exited with 0 +++)"},
		&cli.BoolFlag{Name: "A", Usage: "append to the -o file instead of replacing it"},
		&cli.StringSliceFlag{Name: "E", Usage: "start the program with `VAR=VALUE` in its environment, or without VAR (repeatable)"},
		&cli.StringFlag{Name: "u", Usage: "start the program as `USER` (a name or an ID), with the user's groups"},
		&cli.IntFlag{Name: "s", Value: 32, Usage: "cut values at `N` characters"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show any object with its own repr() (runs the program's code; default: builtins only)"},
		&cli.BoolFlag{Name: "indent", Usage: "indent nested calls by their depth"},
		&cli.BoolFlag{Name: "c", Usage: "count calls, time and exceptions per function; print a table at the end instead of the trace"},
		&cli.BoolFlag{Name: "C", Usage: "like -c, and print the trace too"},
		&cli.StringFlag{Name: "S", Value: "time", Usage: "sort the -c table by `KEY`: " + strings.Join(report.SortKeys, ", ")},
		&cli.BoolFlag{Name: "json", Usage: "write events as JSON Lines"},
		&cli.BoolFlag{Name: "f", Usage: "follow forked children (multiprocessing with fork)"},
		&cli.BoolFlag{Name: "ff", Usage: "like -f, and with -o FILE each process's trace goes to FILE.PID"},
		&cli.BoolFlag{Name: "no-native", Usage: "record with the hook's Python callback only (by default, on x86-64, calls, returns, their times, and arguments and values returned that are small builtins or objects, are recorded by a machine-code callback, many times cheaper)"},
		&cli.StringFlag{Name: "color", Value: "auto", Usage: "color the output: `WHEN` is never, auto (on a terminal) or always"},
	}
}

// sinkFlags are the options of a command whose events go elsewhere than
// a text trace (record, top): its own, then the tracing options, with -o
// as output says (nil: none).
func sinkFlags(own []cli.Flag, output cli.Flag) []cli.Flag {
	flags := own
	for _, f := range traceFlags() {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "output" {
			if output == nil {
				continue
			}
			f = output
		}
		flags = append(flags, f)
	}
	return flags
}

// textTraceOption is the first of names set on the command line: options
// of the text trace, which a command whose events go elsewhere refuses
// ("" if none).
func textTraceOption(c *cli.Context, names ...string) string {
	for _, n := range names {
		if c.IsSet(n) {
			return n
		}
	}
	return ""
}

// traceOptions reads the tracing options: what the hook must record, and
// what to print.
func traceOptions(c *cli.Context, out *os.File) (hook.TraceConfig, report.Options, error) {
	var cfg hook.TraceConfig
	var opts report.Options
	for _, pat := range c.StringSlice("filter") {
		// strace's spelling, -e trace=a,b; its other qualifiers are
		// about system calls.
		if q, rest, ok := strings.Cut(pat, "="); ok && regexp.MustCompile(`^[a-z]+$`).MatchString(q) {
			if q != "trace" {
				return cfg, opts, usagef("-e %s=: lptrace traces Python calls: give -e PATTERN or -e trace=PATTERN", q)
			}
			pat = rest
		}
		for _, p := range strings.Split(pat, ",") {
			p = strings.TrimSpace(p)
			exclude := strings.HasPrefix(p, "!")
			p = strings.TrimPrefix(p, "!")
			if p == "" {
				return cfg, opts, usagef("-e %q: empty pattern", pat)
			}
			if err := session.CheckPattern(p); err != nil {
				return cfg, opts, usagef("-e %q: %v", p, err)
			}
			cfg.Filters = append(cfg.Filters, hook.Filter{Exclude: exclude, Pattern: p})
		}
	}
	cfg.NoStdlib = c.Bool("no-stdlib")
	switch {
	case c.Bool("ttt"):
		opts.Time = report.Epoch
	case c.Bool("tt"):
		opts.Time = report.ClockUsec
	case c.Bool("t"):
		opts.Time = report.Clock
	}
	if c.Bool("r") {
		opts.Time = report.Relative
	}
	opts.Durations = c.Bool("T")
	opts.Args = c.Bool("args")
	opts.Returns = c.Bool("ret")
	opts.OnlyErrors = c.Bool("Z")
	opts.OnlyOK = c.Bool("z")
	opts.Stack = c.Bool("k")
	if opts.OnlyErrors && opts.OnlyOK {
		return cfg, opts, usagef("-z and -Z exclude each other")
	}
	switch {
	case c.Bool("qq"):
		opts.Quiet = 2
	case c.Bool("q"):
		opts.Quiet = 1
	}
	opts.Indent = c.Bool("indent")
	opts.JSON = c.Bool("json")
	opts.Summary = c.Bool("c") || c.Bool("C")
	opts.Trace = !c.Bool("c") || c.Bool("C")
	opts.SortBy = c.String("S")
	if !slices.Contains(report.SortKeys, opts.SortBy) {
		return cfg, opts, usagef("-S %q: sort by one of %s", opts.SortBy, strings.Join(report.SortKeys, ", "))
	}
	n := c.Int("s")
	if n <= 0 {
		return cfg, opts, usagef("-s %d: give a positive number of characters", n)
	}
	switch c.String("color") {
	case "always":
		opts.Color = true
	case "never":
	case "auto":
		opts.Color = isTerminal(out) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	default:
		return cfg, opts, usagef("--color %q: use never, auto or always", c.String("color"))
	}
	if opts.JSON {
		opts.Color = false
	}

	cfg.Returns = opts.NeedReturns()
	cfg.Times = opts.NeedTimes()
	cfg.Args = opts.Args
	cfg.Stack = opts.Stack
	// -Z shows the exception, so it needs the values at returns.
	cfg.RetValues = opts.Returns || opts.OnlyErrors || opts.OnlyOK
	cfg.StrSize = n
	cfg.Verbose = c.Bool("verbose")
	cfg.Follow = c.Bool("f") || c.Bool("ff")
	cfg.NoNative = c.Bool("no-native")
	// -c alone: only the table is wanted, which the hook can keep itself.
	cfg.Aggregate = opts.Summary && !opts.Trace
	return cfg, opts, nil
}

// isTerminal is a heuristic good enough for colour: a character device
// that is not /dev/null.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
