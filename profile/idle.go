package profile

import (
	"path/filepath"
	"strings"

	"github.com/lptrace/lptrace/trace"
)

// waits are the standard library's functions whose time is waiting: a
// lock, a condition, a thread's end, a socket, a selector, a child. A
// flame graph leaves their time out unless --idle (as py-spy leaves out
// idle threads): a worker pool waiting for work would fill it. A wait in
// C called directly (time.sleep, a C extension's) cannot be told from
// work: it counts as its caller's own time.
var waits = map[string][]string{
	"threading.py":    {"Condition.wait", "Condition.wait_for", "Event.wait", "Thread.join", "Thread._wait_for_tstate_lock", "Semaphore.acquire", "BoundedSemaphore.acquire", "Barrier.wait"},
	"selectors.py":    {"SelectSelector.select", "PollSelector.select", "EpollSelector.select", "DevpollSelector.select", "KqueueSelector.select", "_PollLikeSelector.select", "select"},
	"socket.py":       {"socket.accept", "create_connection"},
	"subprocess.py":   {"Popen.wait", "Popen._wait", "Popen._try_wait"},
	"connection.py":   {"wait", "Connection._recv", "Connection._recv_bytes", "Connection._poll"},
	"socketserver.py": {"BaseServer.serve_forever"},
}

// isWait tells whether c is one of them (a function of that name in a
// file of that name in a lib directory of Python).
func isWait(c *trace.Code) bool {
	names, ok := waits[filepath.Base(c.File)]
	if !ok || !strings.Contains(c.File, "python") {
		return false
	}
	for _, n := range names {
		if c.Name == n {
			return true
		}
	}
	return false
}
