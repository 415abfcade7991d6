package session

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// LPTRACE_TIMING=1 prints when each phase of an attach ends, in
// milliseconds since lptrace started: what docs/performance.md's
// breakdown of the attach latency comes from.
var (
	timing     = os.Getenv("LPTRACE_TIMING") != ""
	timingZero = time.Now()
)

// Phase notes, with LPTRACE_TIMING set, that a phase of an operation ended.
func Phase(name string) {
	if timing {
		fmt.Fprintf(os.Stderr, "lptrace: timing: %7.2f ms %s\n", float64(time.Since(timingZero).Microseconds())/1000, name)
	}
}

// QuickStart turns the garbage collector off until the work that must be
// quick is done (an attach: until the hook has started; see steady): in a
// process that lives a few milliseconds it would run once or twice, while
// the target may be waiting, and on a busy 2-core machine it competes with
// the target for the other core. The memory limit turns it back on should
// the heap reach 64 MiB first (an attach needs a few).
// GOGC or GOMEMLIMIT set by the user are left alone.
func QuickStart() {
	if userGC {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(64 << 20)
}

var userGC = os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != ""

// steady turns the collector back on, with its usual settings, for a
// session that lasts: lptrace's memory stays small while it streams.
func steady() {
	if userGC {
		return
	}
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
}

// steadyLater is steady, once.
var steadyLater = sync.OnceFunc(steady)
