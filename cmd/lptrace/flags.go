package main

import "github.com/urfave/cli/v2"

// urfave/cli v2 derives a flag's names with a regular expression at each
// Names() call, and before every command runs it looks up each of the
// command's flags by name among all of them: 0.7 ms of every start of
// lptrace, that is of every attach. These wrappers answer Names() from a
// copy made once; every other method is the flag's own.
type (
	boolFlag struct {
		*cli.BoolFlag
		names []string
	}
	stringFlag struct {
		*cli.StringFlag
		names []string
	}
	stringSliceFlag struct {
		*cli.StringSliceFlag
		names []string
	}
	intFlag struct {
		*cli.IntFlag
		names []string
	}
	genericFlag struct {
		*cli.GenericFlag
		names []string
	}
)

func (f boolFlag) Names() []string        { return f.names }
func (f stringFlag) Names() []string      { return f.names }
func (f stringSliceFlag) Names() []string { return f.names }
func (f intFlag) Names() []string         { return f.names }
func (f genericFlag) Names() []string     { return f.names }

// cacheNames wraps the app's flags and its commands' (a flag of another
// type stays as it is).
func cacheNames(app *cli.App) {
	wrap := func(fs []cli.Flag) {
		for i, f := range fs {
			switch t := f.(type) {
			case *cli.BoolFlag:
				fs[i] = boolFlag{t, t.Names()}
			case *cli.StringFlag:
				fs[i] = stringFlag{t, t.Names()}
			case *cli.StringSliceFlag:
				fs[i] = stringSliceFlag{t, t.Names()}
			case *cli.IntFlag:
				fs[i] = intFlag{t, t.Names()}
			case *cli.GenericFlag:
				fs[i] = genericFlag{t, t.Names()}
			}
		}
	}
	wrap(app.Flags)
	for _, c := range app.Commands {
		wrap(c.Flags)
	}
}
