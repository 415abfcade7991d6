package main

import (
	"io"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "lptrace",
		Usage:     "strace for Python: see what a running Python program does",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		UsageText: "lptrace attach PID           show every Python call of process PID, live (Ctrl-C detaches)\n" +
			"lptrace -p PID               ... the same\n" +
			"lptrace exec PID CODE        run Python code inside process PID\n" +
			"lptrace exec PID -           ... code read from stdin\n" +
			"lptrace exec --file F PID    ... code read from file F",
		HideHelpCommand: true,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "p", Usage: "trace process `PID` (same as: lptrace attach PID)"},
		}, traceFlags()...),
		Commands: []*cli.Command{
			attachCommand(stdout, stderr),
			execCommand(stdout, stderr),
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err.Error()}
		},
		CommandNotFound: func(c *cli.Context, name string) {},
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	app.Action = func(c *cli.Context) error {
		if c.IsSet("p") {
			pid, err := parsePID(c.String("p"))
			if err != nil {
				return err
			}
			return runAttach(c, pid, stderr)
		}
		if c.NArg() > 0 {
			return usagef("unknown command %q", c.Args().First())
		}
		return cli.ShowAppHelp(c)
	}
	return app
}
