package main

import (
	"context"
	"io"

	"github.com/urfave/cli/v2"
)

// launchMode tells whether the command line gave a program to start after
// `--` (lptrace [options] -- python3 app.py).
func launchMode(c *cli.Context) bool {
	v, _ := c.App.Metadata["launch"].(bool)
	return v
}

func runLaunch(ctx context.Context, argv []string, newRun func(pid int) *attachRun, stderr io.Writer) error {
	return usagef("launch mode is not implemented yet")
}
