package main

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
)

// durationValue is the value of --duration and --timeout: a Go duration
// (1.5s, 300ms, 2m) or plain seconds (5, 0.5), as timeout(1) and py-spy
// take them. Zero and negative are refused (a negative --duration traced
// forever).
type durationValue struct{ d time.Duration }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a duration (5, 1.5s, 300ms, 2m)", s)
		}
		if f > float64(math.MaxInt64)/float64(time.Second) {
			return fmt.Errorf("%q is too long", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return fmt.Errorf("%q: must be more than zero", s)
	}
	v.d = d
	return nil
}

func (v *durationValue) String() string {
	if v == nil || v.d == 0 {
		return ""
	}
	return v.d.String()
}

// durationFlag is an option taking a durationValue; def 0: none.
func durationFlag(name string, def time.Duration, usage string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Value: &durationValue{d: def}, Usage: usage}
}

// durationOf reads an option made by durationFlag.
func durationOf(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*durationValue); ok && v != nil {
		return v.d
	}
	return 0
}
