package main

import (
	"fmt"
	"os"
	"time"
)

// LPTRACE_TIMING=1 prints when each phase of an attach ends, in
// milliseconds since lptrace started: what docs/performance.md's
// breakdown of the attach latency comes from.
var (
	timing     = os.Getenv("LPTRACE_TIMING") != ""
	timingZero = time.Now()
)

func phase(name string) {
	if timing {
		fmt.Fprintf(os.Stderr, "lptrace: timing: %7.2f ms %s\n", float64(time.Since(timingZero).Microseconds())/1000, name)
	}
}
