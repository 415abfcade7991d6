package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/lptrace/lptrace/session"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func execCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run Python code inside a running process and print its output",
		ArgsUsage: "PID [CODE | -]",
		Description: "Runs CODE in the interpreter of process PID, at a safe point, and prints\n" +
			"what it writes to stdout and stderr here (not on the process's own output).\n" +
			"A final expression prints its value. The code sees a copy of the\n" +
			"program's __main__ globals; change state through objects, e.g.\n" +
			"'import app; app.DEBUG = True'. Exit status: 0, or 1 if the code raised.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the code from `FILE` (on lptrace's side)"},
			durationFlag("timeout", 10*time.Second, "give up if no thread reaches a safe point within `DURATION`"),
			&cli.IntFlag{Name: "tid", Usage: "run the code in thread `TID` of the process (default: whichever reaches a safe point first)"},
			&cli.BoolFlag{Name: "raw", Usage: "print the output as is, without escaping control characters"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "say how the code reached the interpreter"},
		},
		OnUsageError: usageErrors("exec"),
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return usagef("exec: missing PID")
			}
			pid, err := parsePID(args[0])
			if err != nil {
				return err
			}
			var code []byte
			switch {
			case c.String("file") != "" && len(args) > 1:
				return usagef("exec: give the code either as an argument or with --file, not both")
			case c.String("file") != "":
				if code, err = os.ReadFile(c.String("file")); err != nil {
					return fmt.Errorf("cannot read the code: %v", err)
				}
			case len(args) == 2 && args[1] == "-":
				if code, err = io.ReadAll(os.Stdin); err != nil {
					return fmt.Errorf("cannot read the code from stdin: %v", err)
				}
			case len(args) == 2:
				code = []byte(args[1])
			case len(args) > 2:
				return usagef("exec: too many arguments (quote the code as one argument)")
			default:
				return usagef("exec: missing CODE (or - for stdin, or --file FILE)")
			}
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
			defer stop()
			t, err := session.Open(pid, 0, func(m string) { fmt.Fprintf(stderr, "lptrace: %s\n", m) })
			if err != nil {
				return err
			}
			defer t.Close()
			return t.Exec(ctx, session.Code{Source: code, Timeout: durationOf(c, "timeout"), TID: c.Int("tid"), Raw: c.Bool("raw"),
				Verbose: c.Bool("verbose"), Stdout: stdout, Stderr: stderr})
		},
	}
}
