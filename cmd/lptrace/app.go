package main

import (
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usageText = "lptrace attach PID...        show every Python call of process PID, live (Ctrl-C detaches)\n" +
	"lptrace [options] -p PID     ... the same\n" +
	"lptrace [options] -- python3 app.py ARGS...\n" +
	"                             start a program and trace it from its first Python call\n" +
	"lptrace exec PID CODE        run Python code inside process PID\n" +
	"lptrace exec PID -           ... code read from stdin\n" +
	"lptrace exec --file F PID    ... code read from file F\n" +
	"lptrace pdb PID              a pdb prompt inside process PID (also: lptrace -d PID)\n" +
	"lptrace stack PID            the Python stack of every thread (--locals, --json)\n" +
	"lptrace record -o FILE PID   every call, timed, into a flame graph (.svg, .html), speedscope\n" +
	"                             or Chrome/Perfetto trace (.json, .pftrace) file; also: -- python3 app.py\n" +
	"lptrace top PID              a live view of the hottest functions (own/total time, calls/s)"

// shortUsage is what lptrace alone says.
var shortUsage = "USAGE:\n   " + strings.ReplaceAll(usageText, "\n", "\n   ") + "\n\nAll options: lptrace --help\n"

func newApp(stdout, stderr io.Writer) *cli.App {
	// -v is strace's verbose; the version is -V, as in strace.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "print the version"}
	cli.FlagStringer = flagHelp
	app := &cli.App{
		Name:            "lptrace",
		Usage:           "strace for Python: see what a running Python program does",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		UsageText:       usageText,
		HideHelpCommand: true,
		// -e and -p split their values themselves; -E VAR=a,b is one value.
		DisableSliceFlagSeparator: true,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "d", Usage: "a pdb prompt inside process `PID` (same as: lptrace pdb PID)"},
			&cli.StringSliceFlag{Name: "p", Usage: "trace process `PID` (same as: lptrace attach PID; repeatable, or \"1 2 3\")"},
		}, traceFlags()...),
		Commands: []*cli.Command{
			attachCommand(stdout, stderr),
			execCommand(stdout, stderr),
			pdbCommand(os.Stdin, stdout, stderr),
			stackCommand(stdout, stderr),
			recordCommand(stdout, stderr),
			topCommand(stdout, stderr),
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err.Error()}
		},
		CommandNotFound: func(c *cli.Context, name string) {},
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	app.Action = func(c *cli.Context) error {
		if c.IsSet("d") {
			pid, err := parsePID(c.String("d"))
			if err != nil {
				return err
			}
			return runPdb(c, pid, os.Stdin, stdout, stderr)
		}
		if c.IsSet("p") {
			if c.NArg() > 0 {
				return usagef("give either -p PID or a command to launch, not both")
			}
			pids, err := parsePIDs(c.StringSlice("p"))
			if err != nil {
				return err
			}
			return runTrace(c, pids, nil, stderr)
		}
		if c.NArg() > 0 && launchMode(c) {
			return runTrace(c, nil, c.Args().Slice(), stderr)
		}
		if c.NArg() > 0 {
			if _, err := parsePID(c.Args().First()); err == nil {
				// strace's habit: the PID after the options.
				return usagef("to trace process %s, give -p %s (or: lptrace attach %s)", c.Args().First(), c.Args().First(), c.Args().First())
			}
			return usagef("unknown command %q", c.Args().First())
		}
		return cli.ShowAppHelp(c)
	}
	cacheNames(app)
	return app
}

// defaultFlagHelp is urfave/cli's own help line of a flag.
var defaultFlagHelp = cli.FlagStringer

// strace's spellings: -tt and -ttt take one dash (the parser takes either).
var longStraceFlag = regexp.MustCompile(`--(ttt?)\b`)

// flagHelp is a flag's help line as strace users read it: no "(default:
// false)" after each switch, and -tt and -ttt with one dash.
func flagHelp(f cli.Flag) string {
	s := defaultFlagHelp(f)
	if _, ok := f.(*cli.BoolFlag); ok {
		s = strings.TrimSuffix(s, " (default: false)")
	}
	return longStraceFlag.ReplaceAllString(s, "-$1")
}
