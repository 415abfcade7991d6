// Package session is one lptrace operation on one process: Open checks the
// process, finds its Python runtime (symbols), makes the pipe its payload
// answers through (transport) and readies the injector (inject, which alone
// drives ptrace); Exec, Stack, Debug and Trace then send a payload (hook) and
// read its records back (wire, trace). The command line (cmd/lptrace) parses
// options and prints; it reaches a process only through this package.
package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
	"github.com/lptrace/lptrace/transport"
)

// newestTested is the newest CPython minor version lptrace was tested with;
// newer ones are attempted with a warning.
var newestTested = symbols.Version{Major: 3, Minor: 15}

// Target is a process ready for a payload: checked, its Python runtime
// found, a private FIFO made in its file system, an injector ready.
type Target struct {
	PID int
	st  *proc.Status
	tgt *symbols.Target
	ch  *transport.Channel
	inj *inject.Injector
}

// Pipe sizes for Open: a trace's events, a stack dump; 0 keeps the kernel's
// default.
const (
	EventPipe = transport.EventPipeSize
	DumpPipe  = 1 << 20
)

// Open does what every operation does first. warn is told of what does not
// stop it (a Python newer than the newest tested).
func Open(pid, pipeSize int, warn func(string)) (*Target, error) {
	Phase("started")
	st, err := checkTarget(pid)
	if err != nil {
		return nil, err
	}
	tr := ptrace.NewTracer() // its thread starts while the target is read
	Phase("target checked")
	// The pipe is made while the symbols are read: both take about a
	// millisecond of an attach.
	type made struct {
		ch  *transport.Channel
		err error
	}
	pipe := make(chan made, 1)
	making := false
	tgt, err := findPython(pid, st, warn, func() {
		// A Python process: nothing is made in another's /tmp.
		making = true
		go func() {
			ch, err := transport.Create(pid, st.UID[1], st.GID[1], pipeSize)
			pipe <- made{ch, err}
		}()
	})
	if err != nil {
		if making {
			if m := <-pipe; m.err == nil {
				m.ch.Close()
			}
		}
		return nil, err
	}
	Phase("symbols read")
	if pipeSize == transport.EventPipeSize { // a trace: its install is next
		go hook.Prepare(minorVersion(tgt.Version)) // while the pipe is made
	}
	m := <-pipe
	ch := m.ch
	if m.err != nil {
		tgt.Close()
		if !proc.Alive(pid) {
			return nil, fmt.Errorf("process %d exited", pid)
		}
		return nil, fmt.Errorf("process %d: %v", pid, m.err)
	}
	Phase("pipe made")
	return &Target{PID: pid, st: st, tgt: tgt, ch: ch, inj: inject.New(tr, tgt)}, nil
}

// Version is the target's Python version.
func (t *Target) Version() symbols.Version { return t.tgt.Version }

// Close releases the target: the injector's tracer, the pipe (its FIFO is
// removed) and the runtime's files.
func (t *Target) Close() {
	t.inj.Close()
	t.ch.Close()
	t.tgt.Close()
}

// checkTarget refuses, with a reason and a remedy, the processes lptrace must
// not or cannot touch, before anything is done to them.
func checkTarget(pid int) (*proc.Status, error) {
	if pid == os.Getpid() {
		return nil, fmt.Errorf("cannot attach to %d: that is lptrace itself", pid)
	}
	st, err := proc.ReadStatus(pid)
	if err != nil {
		if errors.Is(err, proc.ErrNoProcess) {
			return nil, fmt.Errorf("cannot attach to %d: no such process", pid)
		}
		return nil, fmt.Errorf("cannot attach to %d: %v", pid, err)
	}
	if st.Tgid != pid {
		return nil, fmt.Errorf("cannot attach to %d: it is a thread of process %d; give the process ID", pid, st.Tgid)
	}
	if proc.IsKernelThread(pid) {
		return nil, fmt.Errorf("cannot attach to %d: it is a kernel thread (%s), not a Python process", pid, st.Name)
	}
	switch st.State {
	case 'Z', 'X':
		return nil, fmt.Errorf("cannot attach to %d: it is a zombie (it exited and its parent has not reaped it)", pid)
	case 'T':
		return nil, fmt.Errorf("cannot attach to %d: the process is stopped (job control); resume it with 'kill -CONT %d' and retry", pid, pid)
	}
	// Another lptrace holds a thread only for the moment of a call (attach
	// on Python < 3.12 hooks threads one by one): not a reason to refuse.
	// The injection uses another thread, or waits for that one, until
	// --timeout (inject.TracedError).
	if te := inject.TracedByOther(pid); te != nil {
		return nil, fmt.Errorf("cannot attach to %d: it is already traced by process %d (%s); detach that tracer first", pid, te.Tracer, te.Name)
	}
	if euid := os.Geteuid(); euid != 0 && euid != st.UID[1] {
		return nil, fmt.Errorf("cannot attach to %d: it runs as uid %d and lptrace as uid %d; run lptrace as root or as that user", pid, st.UID[1], euid)
	}
	if strings.Contains(st.Features, "shstk") {
		return nil, fmt.Errorf("cannot attach to %d: it runs with a shadow stack (CET), which lptrace's injection does not support yet", pid)
	}
	return st, nil
}

// findPython resolves the Python runtime of pid, with messages for the
// common failures.
func findPython(pid int, st *proc.Status, warn func(string), found func()) (*symbols.Target, error) {
	tgt, err := symbols.FindThen(pid, found)
	if err != nil {
		switch {
		case errors.Is(err, symbols.ErrNotPython):
			return nil, fmt.Errorf("cannot attach to %d: %s is not a Python process (no loaded file defines the CPython runtime)", pid, st.Name)
		case errors.Is(err, proc.ErrNoProcess):
			return nil, fmt.Errorf("cannot attach to %d: the process exited", pid)
		case os.IsPermission(err) || errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("cannot attach to %d: cannot read its memory map or files (%v); %s", pid, err, permissionHint(pid))
		}
		return nil, fmt.Errorf("cannot attach to %d: %v", pid, err)
	}
	v := tgt.Version
	if v.Major < 2 || (v.Major == 2 && v.Minor < 7) || (v.Major == 3 && v.Minor < 6) {
		tgt.Close()
		return nil, fmt.Errorf("cannot attach to %d: Python %s is not supported (2.7 and 3.6 or newer are)", pid, v)
	}
	if v.Major > newestTested.Major || (v.Major == newestTested.Major && v.Minor > newestTested.Minor) {
		warn(fmt.Sprintf("warning: Python %s is newer than the newest tested (%s); trying anyway", v, newestTested))
	}
	if !inject.Supported {
		tgt.Close()
		return nil, fmt.Errorf("cannot attach to %d: %v", pid, inject.ErrUnsupportedArch)
	}
	return tgt, nil
}

// explainAttach turns an error from the injection into one line that says
// what happened and what to do.
func explainAttach(pid int, err error) error {
	var traced *inject.TracedError
	switch {
	case errors.Is(err, inject.ErrExited), errors.Is(err, ptrace.ErrGone), errors.Is(err, proc.ErrNoProcess):
		if !proc.Alive(pid) {
			return fmt.Errorf("process %d exited", pid)
		}
		return fmt.Errorf("process %d: a thread exited during the operation; retry", pid)
	case errors.Is(err, inject.ErrExec):
		return fmt.Errorf("process %d exec'd %s during the operation: the new program runs on, with nothing of lptrace in it", pid, proc.Executable(pid))
	case errors.Is(err, inject.ErrTargetStopped):
		return fmt.Errorf("process %d was stopped (job control) during the operation and is left stopped; resume it with 'kill -CONT %d'", pid, pid)
	case errors.As(err, &traced):
		return fmt.Errorf("cannot attach to %d: %v; detach that tracer first", pid, traced)
	case ptrace.IsPermission(err):
		return fmt.Errorf("cannot attach to %d: ptrace not permitted (%s)", pid, permissionHint(pid))
	case errors.Is(err, inject.ErrNoSafePoint):
		return fmt.Errorf("process %d: %v; the process was left as it was", pid, err)
	}
	return fmt.Errorf("process %d: %v", pid, err)
}

// explainRun turns a failure of inject.RunPython, which was to run what
// ("the code", "the hook"), into one line.
func explainRun(ctx context.Context, pid int, timeout time.Duration, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted before %s ran; process %d left as it was", what, pid)
	case errors.Is(err, inject.ErrGILBusy):
		return fmt.Errorf("process %d: no thread could run Python code within %v: %v; %s will not run, and that thread resumes when the GIL is free", pid, timeout, err, what)
	}
	return explainAttach(pid, err)
}

// permissionHint says why the kernel refused ptrace and how to fix it.
func permissionHint(pid int) string {
	if data, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		switch strings.TrimSpace(string(data)) {
		case "1":
			if os.Geteuid() != 0 {
				return "kernel.yama.ptrace_scope=1 allows tracing only descendants; run as root, or set it to 0, or launch the program with 'lptrace -- python3 ...'"
			}
		case "2":
			if !hasCapSysPtrace() {
				return "kernel.yama.ptrace_scope=2 requires CAP_SYS_PTRACE; run as root with that capability"
			}
		case "3":
			return "kernel.yama.ptrace_scope=3 forbids ptrace entirely until reboot"
		}
	}
	if os.Geteuid() == 0 && !hasCapSysPtrace() {
		return "lptrace lacks CAP_SYS_PTRACE; in a container add it (docker run --cap-add=SYS_PTRACE, or securityContext.capabilities.add: [SYS_PTRACE])"
	}
	if seccompFiltered() {
		return "a seccomp filter on lptrace forbids ptrace; in a container run with a profile that allows it"
	}
	if st, err := proc.ReadStatus(pid); err == nil && os.Geteuid() != 0 && st.UID[1] != os.Geteuid() {
		return fmt.Sprintf("the process runs as uid %d; run lptrace as root or as that user", st.UID[1])
	}
	return "the process may have made itself undumpable (prctl PR_SET_DUMPABLE) or run setuid; run lptrace as root"
}

func hasCapSysPtrace() bool {
	caps, _ := strconv.ParseUint(ownStatus("CapEff"), 16, 64)
	return caps&(1<<19) != 0
}

func seccompFiltered() bool { return ownStatus("Seccomp") == "2" }

// ownStatus is a field of lptrace's own /proc/self/status ("" if absent).
func ownStatus(field string) string {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
