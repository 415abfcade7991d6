package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/launch"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/report"
	"github.com/lptrace/lptrace/symbols"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
	"github.com/lptrace/lptrace/transport"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func attachCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "attach",
		Usage:        "show every Python function call of running processes, live (also: lptrace -p PID)",
		ArgsUsage:    "PID...",
		Flags:        traceFlags(),
		OnUsageError: usageErrors("attach"),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("attach: give a PID")
			}
			pids, err := parsePIDs(c.Args().Slice())
			if err != nil {
				return err
			}
			return runTrace(c, pids, nil, stderr)
		},
	}
}

// parsePIDs reads PIDs given as separate arguments, or several in one
// ("1 2 3", "1,2,3"), as strace's -p takes them.
func parsePIDs(args []string) ([]int, error) {
	var pids []int
	for _, a := range args {
		for _, f := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			pid, err := parsePID(f)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) == 0 {
		return nil, usagef("give a PID")
	}
	return pids, nil
}

// runTrace traces pids (attached), or the program launch starts, until
// Ctrl-C, --duration, or the end of every target; then prints the summary
// if asked.
func runTrace(c *cli.Context, pids []int, launch []string, stderr io.Writer) error {
	return runSessions(c, pids, launch, stderr, nil)
}

// sessionSink is what takes a session's events instead of the text or
// JSON trace: a recording (lptrace record), the top screen.
type sessionSink interface {
	// options adjusts what the hook records and the printer does.
	options(hook.TraceConfig, report.Options) (hook.TraceConfig, report.Options)
	// add is told of each session (each process attached).
	add(a *attachRun)
	// progress runs beside the sessions (cancel ends them); the function
	// it returns stops it.
	progress(ctx context.Context, cancel context.CancelFunc, stderr io.Writer) func()
	// finish ends it, once every session has.
	finish(stderr io.Writer) error
}

// runSessions is runTrace; with rec, the events go to rec, not to the
// text or JSON trace, and -o is rec's.
func runSessions(c *cli.Context, pids []int, launch []string, stderr io.Writer, rec sessionSink) error {
	out, outFile := stderr, os.Stderr
	if c.Bool("json") && rec == nil {
		// JSON Lines for a program to read: on stdout, apart from
		// lptrace's own messages (stderr), unless -o says where.
		out, outFile = os.Stdout, os.Stdout
	}
	// Write-only: opened read-write (os.Create), a FIFO would have lptrace
	// as a reader of its own output, so it would never see its reader go
	// away.
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if c.Bool("A") {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	split := c.Bool("ff") && c.String("output") != "" && rec == nil // -ff -o FILE: FILE.PID per process
	if name := c.String("output"); name != "" && !split && rec == nil {
		f, err := os.OpenFile(name, mode, 0o666)
		if err != nil {
			return fmt.Errorf("cannot write the trace: %v", err)
		}
		defer f.Close()
		out, outFile = f, f
	}
	cfg, opts, err := traceOptions(c, outFile)
	if err != nil {
		return err
	}
	if rec != nil {
		cfg, opts = rec.options(cfg, opts)
	}
	lo, err := launchOptions(c, launch != nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer stop()
	duration := durationOf(c, "duration")
	if duration > 0 && launch != nil {
		// From the launch on: the program is traced from its start.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	printer := report.NewPrinter(out, opts)
	if split {
		printer.Split(func(pid int) (io.WriteCloser, error) {
			return os.OpenFile(fmt.Sprintf("%s.%d", c.String("output"), pid), mode, 0o666)
		})
		defer printer.Close()
	} else if len(pids) > 1 {
		printer.ShowPID()
	}
	newRun := func(pid int) *attachRun {
		a := &attachRun{pid: pid, timeout: durationOf(c, "timeout"), duration: duration, cfg: cfg, printer: printer, stderr: stderr,
			traceToFile: c.String("output") != "" && rec == nil, quiet: opts.Quiet}
		if rec != nil {
			rec.add(a)
		}
		return a
	}
	var status error
	stopProgress := func() {}
	if rec != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stopProgress = sync.OnceFunc(rec.progress(ctx, cancel, stderr))
		defer stopProgress()
	}
	if launch != nil {
		status = runLaunch(ctx, launch, lo, newRun, stderr)
	} else {
		errs := make([]error, len(pids))
		var wg sync.WaitGroup
		for i, pid := range pids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = newRun(pid).run(ctx)
			}()
		}
		wg.Wait()
		status = errors.Join(errs...)
	}
	if errors.Is(status, errOutputStalled) {
		// Every target is detached; a write now could block for good, and
		// stderr may be that same pipe: say it without waiting for it.
		go fmt.Fprintf(os.Stderr, "lptrace: %v\n", errOutputStalled)
		time.Sleep(100 * time.Millisecond)
		os.Exit(1)
	}
	werr := printer.Flush()
	if rec != nil {
		stopProgress()
		if err := rec.finish(stderr); err != nil && status == nil {
			return err
		}
		return status
	}
	if opts.Summary && werr == nil {
		werr = printer.WriteSummary(out, printer.Dropped())
	}
	// A reader that went away (| head) ends the trace as strace's does;
	// any other write error (a full disk, -o /dev/full) is the user's to
	// know: the trace is incomplete.
	if werr != nil && !errors.Is(werr, unix.EPIPE) && status == nil {
		name := c.String("output")
		if name == "" {
			name = "stderr"
		}
		return fmt.Errorf("cannot write the trace to %s: %v; the trace is incomplete", name, unwrapPathError(werr))
	}
	return status
}

// unwrapPathError drops the "write FILE:" of an *os.PathError, which the
// message names already.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

type attachRun struct {
	pid      int
	timeout  time.Duration
	duration time.Duration // of the trace, from the attach on (0: until Ctrl-C)
	cfg      hook.TraceConfig
	printer  *report.Printer
	stderr   io.Writer
	program  string // proc.ProgramID at the start: tells an exec
	follow   bool   // the hook follows forks (-f, and Python 3.7+)
	// child is the program launch mode started (lptrace its parent).
	child *launch.Child
	// exit follows how the process ends (attach mode).
	exit *proc.ExitWatch
	// traceToFile: -o, the trace (and its closing lines) goes to a file;
	// the terminal is told of the end too.
	traceToFile bool
	quiet       int               // -q, -qq (see note)
	sink        func(trace.Event) // lptrace record: the events go there, not to printer
	droppedNow  atomic.Uint64     // the events dropped so far (record's progress line)
	exitsMu     sync.Mutex
	exits       []childEnd // followed children that ended, their lines not written yet
	// allHooked is closed when the hook (before 3.12) has set the profile
	// function of every thread that existed at attach.
	allHooked  chan struct{}
	hookedOnce sync.Once
}

func (a *attachRun) say(format string, args ...any) {
	fmt.Fprintf(a.stderr, "lptrace: "+format+"\n", args...)
}

// note says what -q silences: a process attached, started, detached; and
// -qq how it ended.
func (a *attachRun) note(quiet int, format string, args ...any) {
	if a.quiet < quiet {
		a.say(format, args...)
	}
}

// run installs the hook in a.pid and prints its events until ctx ends or
// the target goes away.
func (a *attachRun) run(ctx context.Context) error {
	o, err := openTarget(a.pid, transport.EventPipeSize, func(m string) { a.say("%s", m) })
	if err != nil {
		return err
	}
	defer o.Close()
	tgt, ch, inj := o.tgt, o.ch, o.inj
	session := newSession()
	a.program = tgt.Program
	a.addRing(ch, o.st.UID[1], o.st.GID[1])

	a.exit = proc.WatchExit(a.pid)
	defer a.exit.Close()
	ch.OnEnd = a.exit.Note
	recs, started := ch.Stream()
	tids, _ := proc.Threads(a.pid) // before the hook adds its timer thread
	// The precompiled hook first; the source on a second try (the target
	// may have another bytecode magic number, where the precompiled
	// install does nothing).
	install := func(try int) ([]byte, inject.Options) {
		load := hook.Precompiled
		if try > 0 {
			load = hook.Source
		}
		code, data := hook.TraceInstall(ch.Pipe(), session, a.hookConfig(tgt.Version), minorVersion(tgt.Version), load)
		return code, inject.Options{Data: data, DataAt: hook.DataAt}
	}
	end := time.Now().Add(a.timeout)
	var route inject.Route
	for failures, try := 0, 0; ; try++ {
		code, opt := install(try)
		opt.Timeout, opt.Started = max(time.Until(end), 0), started
		var err error
		route, err = inj.RunPython(ctx, code, opt)
		if err != nil {
			return explainRun(ctx, a.pid, a.timeout, "the hook", err)
		}
		phase(fmt.Sprintf("injected (%s; stopped again %d times)", route, inj.Restops()))
		// A signal handler of the program that raises inside the install
		// (its Ctrl-C, handed back to it) makes the hook undo itself
		// without a word: the install is sent again. A direct call has
		// returned, its S record is on its way, or there is none; a pending
		// call may not have run yet. Two installs that both run are
		// harmless: the second finds the session in place.
		wait := time.Second
		switch {
		case route.Raised:
			// Raised before its own try: it did not even start, nor could
			// it give the program back its Ctrl-C; lptrace does, if it saw
			// one arrive.
			wait = 0
			if route.Saw(unix.SIGINT) {
				ptrace.Tgkill(a.pid, route.TID, int(unix.SIGINT))
			}
		case !route.Pending:
			wait = 300 * time.Millisecond
		}
		var again <-chan time.Time
		if time.Until(end) > wait {
			again = time.After(wait)
		}
		select {
		case <-started:
		case <-again:
			if !route.Pending {
				if failures++; failures == 5 {
					return fmt.Errorf("process %d: the hook's install ran %d times without reporting back (the program's signal handlers interrupted it, or it found no free sys.monitoring tool ID, or could not open lptrace's pipe); try again", a.pid, failures)
				}
			}
			continue
		case <-ctx.Done():
			return fmt.Errorf("interrupted before the hook started; process %d left as it was", a.pid)
		case <-time.After(time.Until(end)):
			return notReached(a.pid, a.timeout, route, "the hook")
		}
		break
	}
	if why := ch.Refused(); why != "" {
		return fmt.Errorf("process %d: the hook refused to start: %s", a.pid, termsafe.Escape([]byte(why), false))
	}
	if len(tids) > 1 {
		a.printer.ShowTID()
	}
	phase("hook started")
	a.note(1, "process %d attached (Python %s, %s)", a.pid, tgt.Version, plural(len(tids), "thread"))
	a.warnFollow(tgt.Version)

	// Before 3.12 each thread that already exists hooks itself: the engine
	// runs the per-thread installer in each one at a safe point, and keeps
	// trying for threads that are busy now.
	hookCtx, stopHooking := context.WithCancel(ctx)
	var hooking sync.WaitGroup
	a.allHooked = make(chan struct{})
	if !tgt.Version.AtLeast(3, 12) {
		hooked := map[int]bool{ranInstall(route, a.pid): true}
		hooking.Add(1)
		go func() {
			defer hooking.Done()
			a.hookThreads(hookCtx, inj, session, hooked, tids)
		}()
	}
	if a.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.duration)
		defer cancel()
	}
	return a.stream(ctx, ch, recs, func() {
		stopHooking()
		hooking.Wait()
	})
}

// ranInstall is the thread that ran the install, which hooked itself: the
// main thread for a pending call (route.TID is then the thread that queued
// it, which still needs hooking), else the thread it ran in.
func ranInstall(route inject.Route, pid int) int {
	if route.Pending {
		return pid
	}
	return route.TID
}

// stream prints the events of the hook until ctx ends, the target goes
// away, or the reader of our output does; then detaches: closing the pipe is
// the signal. The hook sees the broken pipe at its next write (50 ms at
// most) and removes itself from every thread, exactly as when lptrace dies.
// beforeClose stops what else works on the target.
func (a *attachRun) stream(ctx context.Context, ch *transport.Channel, recs <-chan transport.Item, beforeClose func()) error {
	// The collector comes back at the loop's first tick (steadyLater),
	// once the first events are out: turned on now, it would start a cycle
	// at once (the heap grew without it) and take the CPU that prints them.
	dec := trace.Decoder{Times: a.cfg.Times, Values: a.cfg.Values()}
	dec.Hooked = func(p *trace.Process) {
		if p.PID == a.pid && a.allHooked != nil {
			a.hookedOnce.Do(func() { close(a.allHooked) })
		}
	}
	// Once ctx ends, what is still queued is decoded but not shown: a
	// backlog of millions of events (a busy program traced with -T) would
	// take seconds to format, and look like an output nobody reads.
	var ended atomic.Bool
	dec.NewProcess = func(p *trace.Process) {
		phase("hook's code " + p.Loaded)
		if p.PID != a.pid {
			a.printer.ShowPID()
			a.note(1, "process %d (forked by %d) attached", p.PID, p.PPID)
			go a.childExit(ctx, p.PID, &ended)
		}
	}
	stopWatch := context.AfterFunc(ctx, func() { ended.Store(true) })
	defer stopWatch()
	emit := func(e trace.Event) {
		if !ended.Load() {
			a.printer.Event(e) // (it turns [tid N] on at a process's second thread)
		}
	}
	if a.sink != nil {
		// A recording takes what is queued when the session ends too (it
		// formats nothing meanwhile).
		emit = a.sink
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// The loop runs apart so that Ctrl-C is obeyed even while a write of
	// the output blocks (a reader that stopped reading: | less, | sleep).
	// A recording takes what the hook recorded up to the end: the loop
	// reads on for a moment after it (the hook writes every 50 ms, the
	// ring is read every 200).
	loopCtx, grace := ctx, time.Duration(0)
	if a.sink != nil {
		grace = 400 * time.Millisecond
		var cancel context.CancelFunc
		loopCtx, cancel = context.WithCancel(context.Background())
		defer cancel()
		stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
		defer stopGrace()
	}
	loopDone := make(chan error, 1)
	go func() { loopDone <- a.loop(loopCtx, recs, &dec, emit, tick.C) }()
	var reason error
	select {
	case reason = <-loopDone:
	case <-ctx.Done():
		select {
		case reason = <-loopDone:
		case <-time.After(500*time.Millisecond + grace):
			// Stuck writing: detach without touching the output again.
			beforeClose()
			ch.Close()
			return errOutputStalled
		}
	}
	a.printer.Flush()
	beforeClose()
	// Closing the pipe tells the hook to leave; it notices at its timer's
	// next turn (50 ms at most) and closes its end last, once it has
	// removed itself (profile functions, sys.monitoring tool, threading's
	// hook). "detached" is said after that.
	pipe := ch.Pipe()
	fd := -1
	if reason == nil {
		fd = hookFD(a.pid, pipe.Dev, pipe.Ino)
	}
	ch.Close()
	if fd >= 0 && !waitClosed(a.pid, fd, pipe.Dev, pipe.Ino, time.Second) && proc.Alive(a.pid) {
		a.say("process %d: the hook has not removed itself yet (it holds the GIL rarely, or is stopped): it does at its next turn", a.pid)
	}
	a.printer.AddDropped(dec.Dropped)
	if dec.Dropped > 0 {
		a.say("process %d: %s", a.pid, report.Dropped(dec.Dropped))
	}
	if dec.Undefined > 0 {
		a.say("process %d: %d events not shown: the hook lost the definition of their function or thread", a.pid, dec.Undefined)
	}
	for _, p := range unmatched(a.cfg.Filters, &dec) {
		a.say("process %d: no call matched -e %s", a.pid, termsafe.Escape([]byte(p), false))
	}
	a.childExits()
	switch {
	case errors.Is(reason, errExited):
		status, known := a.exitStatus()
		a.printer.Exit(a.pid, status, known)
		if a.traceToFile {
			a.note(2, "process %d %s", a.pid, report.HowEnded(status, known))
		}
		return nil
	case errors.Is(reason, errExecd):
		exe := proc.Executable(a.pid)
		a.say("process %d exec'd %s: the hook went with the old program", a.pid, termsafe.Escape([]byte(exe), false))
		return nil
	}
	if reason != nil {
		a.say("process %d: %v", a.pid, reason)
	}
	a.note(1, "process %d detached", a.pid)
	return nil
}

// exitStatus is how the process ended: from its wait status in launch
// mode (lptrace is its parent), else as /proc showed it while it ended.
func (a *attachRun) exitStatus() (int, bool) {
	if a.child != nil {
		a.child.Wait()
		return a.child.Status()
	}
	if a.exit == nil {
		return 0, false
	}
	return a.exit.Status(time.Second)
}

// childExit writes a followed child's "+++ exited with N +++" line (-f)
// once it has ended, after its last events (the ring is read at least
// every few hundred milliseconds). Its status is known while it is a
// zombie (its parent reaps it at once, often), or from its pidfd on Linux
// 6.15+; else the line says "exited", never a guess.
func (a *attachRun) childExit(ctx context.Context, pid int, ended *atomic.Bool) {
	w := proc.WatchExit(pid)
	defer w.Close()
	if !w.Wait(ctx.Done()) {
		return
	}
	status, known := w.Exact()
	a.exitsMu.Lock()
	a.exits = append(a.exits, childEnd{pid, status, known})
	a.exitsMu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(300 * time.Millisecond):
		if !ended.Load() {
			a.childExits()
		}
	}
}

// childEnd is how a followed child ended, until its line is written.
type childEnd struct {
	pid, status int
	known       bool
}

// childExits writes the exit lines of the children that ended (-f), also
// at the session's end, before the program's own.
func (a *attachRun) childExits() {
	a.exitsMu.Lock()
	defer a.exitsMu.Unlock()
	for _, e := range a.exits {
		a.printer.Exit(e.pid, e.status, e.known)
	}
	a.exits = nil
}

// steadyLater is steady, once.
var steadyLater = sync.OnceFunc(steady)

// errOutputStalled: lptrace detached on a signal while its output was
// blocked; nothing more can be written there.
var errOutputStalled = errors.New("the output is blocked (its reader does not read); detached")

// Why a session's loop stopped, besides Ctrl-C and the reader of the
// output (nil).
var (
	errExited   = errors.New("exited")
	errExecd    = errors.New("exec'd another program")
	errHookGone = errors.New("the hook went away")
	errBadData  = errors.New("bad data from the target")
)

// loop decodes and prints records until ctx ends, the target goes away or
// the reader of the output does; it returns why it stopped (nil for ctx or
// the reader).
func (a *attachRun) loop(ctx context.Context, recs <-chan transport.Item, dec *trace.Decoder, emit func(trace.Event), tick <-chan time.Time) error {
	var gone error // the target ended: the pipe is read to its end, a moment at most
	var drainUntil, drainEnd time.Time
	for {
		select {
		case it := <-recs:
			if it.Err != nil {
				if !errors.Is(it.Err, io.EOF) {
					return fmt.Errorf("%w (%v)", errBadData, it.Err)
				}
				// A dying process closes its pipe before it is gone, and a
				// new program shows a moment after the old one closed it.
				for i := 0; i < 20; i++ {
					if r := a.ended(); r != nil {
						return r
					}
					time.Sleep(10 * time.Millisecond)
				}
				return errHookGone
			}
			if gone != nil {
				// a second without data at most, ten in all
				drainUntil = time.Now().Add(time.Second)
				if drainUntil.After(drainEnd) {
					drainUntil = drainEnd
				}
			}
			if err := dec.Decode(it.Rec, emit); err != nil {
				return fmt.Errorf("%w (%v)", errBadData, err)
			}
			if len(recs) == 0 && a.printer.Flush() != nil {
				return nil // the reader of our output went away (| head)
			}
		case <-ctx.Done():
			return nil
		case <-tick:
			steadyLater()
			a.droppedNow.Store(dec.Dropped)
			// Followed children keep the pipe open after the parent exits:
			// the end of the stream tells when the last one is gone.
			if a.follow {
				continue
			}
			if gone == nil {
				// What the program wrote before it ended is still in the
				// pipe (its last burst, up to the pipe's size): read on
				// until the end of the stream. A process that inherited the
				// pipe may hold it open: a second without data at most.
				gone = a.ended()
				drainUntil, drainEnd = time.Now().Add(time.Second), time.Now().Add(10*time.Second)
			} else if time.Now().After(drainUntil) {
				return gone
			}
		}
	}
}

// ended says whether the target exited (errExited) or replaced its
// program by an exec (errExecd), which takes the hook with it; nil if
// neither.
func (a *attachRun) ended() error {
	if a.exit != nil {
		a.exit.Note()
	}
	if !proc.Alive(a.pid) {
		return errExited
	}
	if id := proc.ProgramID(a.pid); a.program != "" && id != "" && id != a.program {
		return errExecd
	}
	return nil
}

// hookThreads installs the per-thread hook in every thread not hooked yet,
// retrying busy threads until ctx ends.
//
// The main thread is hooked again every third round for the first 6 s,
// then every 3 s (the installer does nothing when the hook is in place):
// the interpreter removes a profile function that raises, and a
// KeyboardInterrupt (only the main thread gets them) can be raised at the
// very first instruction of ours, before any handler of ours runs. Each
// time stops the main thread for a moment (and costs lptrace CPU while
// the program idles): less often once the session runs.
//
// A thread that cannot be hooked for a while is named once, so that the
// missing calls do not go unexplained.
func (a *attachRun) hookThreads(ctx context.Context, inj *inject.Injector, session string, hooked map[int]bool, atAttach []int) {
	src := hook.TraceThread(session)
	never := make(chan struct{})
	// Only threads that existed at attach can lack the hook (later ones get
	// it from threading.setprofile); the main thread had it at attach.
	firstTry := map[int]time.Time{}
	warned := map[int]bool{}
	existed := map[int]bool{}
	for _, tid := range atAttach {
		existed[tid] = tid != a.pid
	}
	for round := 0; ; round++ {
		rehook := (round < 30 && round%3 == 2 || round%15 == 14) && !inEpollWait(a.pid)
		select {
		case <-a.allHooked:
			// The hook set every thread's profile function itself: only
			// the main thread's periodic re-hook remains.
			for _, tid := range atAttach {
				hooked[tid] = true
			}
			for tid := range warned {
				a.note(1, "process %d: thread %d is traced now", a.pid, tid)
				delete(warned, tid)
			}
		default:
		}
		if rehook {
			delete(hooked, a.pid)
		}
		tids, err := proc.Threads(a.pid)
		if err != nil {
			return
		}
		for _, tid := range tids {
			if hooked[tid] || ctx.Err() != nil {
				continue
			}
			if _, err := inj.RunPython(ctx, src, inject.Options{Timeout: 300 * time.Millisecond, Started: never, TID: tid}); err == nil {
				hooked[tid] = true
				if warned[tid] {
					a.note(1, "process %d: thread %d is traced now", a.pid, tid)
					delete(warned, tid)
				}
				continue
			}
			if !existed[tid] {
				continue
			}
			if _, ok := firstTry[tid]; !ok {
				firstTry[tid] = time.Now()
			} else if !warned[tid] && time.Since(firstTry[tid]) > 2*time.Second && ctx.Err() == nil {
				warned[tid] = true
				a.say("process %d: thread %d (%s) is not traced: it never waits in a blocking call, where lptrace could hook it; still trying", a.pid, tid, termsafe.Escape([]byte(proc.ThreadName(a.pid, tid)), false))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// inEpollWait tells whether the main thread waits in epoll: a call made
// there makes epoll_wait return EINTR to the program (the kernel never
// restarts it), so the periodic re-hook skips that round; Python retries
// on EINTR, but a C extension might not.
func inEpollWait(pid int) bool {
	sc, err := proc.ReadSyscall(pid, pid)
	if err != nil || sc.Running {
		return false
	}
	return strings.HasPrefix(inject.SyscallName(sc.Nr), "epoll_")
}

// ringSlots is how many processes a ring holds: the traced one, and with
// -f the first children it forks (later ones send their records through
// the pipe).
func (a *attachRun) ringSlots() int {
	if a.cfg.Follow {
		return 8
	}
	return 1
}

// addRing makes the ring the hook shares with lptrace (transport.Ring),
// owned by the target's user; without one the records go through the
// pipe, and what a program recorded just before it died may be lost.
func (a *attachRun) addRing(ch *transport.Channel, uid, gid int) {
	_, p, err := ch.AddRing(uid, gid, a.ringSlots())
	if err != nil {
		a.say("warning: no memory shared with process %d (%v): the events it records right before it dies may be lost", a.pid, err)
		return
	}
	a.cfg.Ring, a.cfg.RingSlots = p, a.ringSlots()
}

// hookConfig is the hook's configuration for Python v: -f only where the
// hook can follow (before 3.7 a child would trace into a pipe nobody reads
// it from). It is also what the stream loop goes by.
func (a *attachRun) hookConfig(v symbols.Version) hook.TraceConfig {
	cfg := a.cfg
	if !v.AtLeast(3, 7) {
		cfg.Follow = false
	}
	a.follow = cfg.Follow
	return cfg
}

// warnFollow says when -f cannot work: the hook follows a fork from
// os.register_at_fork, new in 3.7.
func (a *attachRun) warnFollow(v symbols.Version) {
	if a.cfg.Follow && !v.AtLeast(3, 7) {
		a.say("-f needs Python 3.7 or newer (os.register_at_fork): the children of process %d will not be traced", a.pid)
	}
}

// minorVersion is "3.11" for 3.11.7: the version whose precompiled hook
// the target can load.
func minorVersion(v symbols.Version) string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// newSession names one installation of the hook (several lptraces may trace
// one process).
func newSession() string {
	var rnd [8]byte
	rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

// hookFD is the descriptor of process pid open on the FIFO (dev, ino): the
// hook's end. -1 if none.
func hookFD(pid int, dev, ino uint64) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(dir+"/"+e.Name(), &st) == nil && st.Dev == dev && st.Ino == ino {
			var fd int
			if _, err := fmt.Sscan(e.Name(), &fd); err == nil {
				return fd
			}
		}
	}
	return -1
}

// waitClosed waits up to limit for process pid to close fd, open on the
// FIFO (dev, ino); false if it still has it open.
func waitClosed(pid, fd int, dev, ino uint64, limit time.Duration) bool {
	path := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	for end := time.Now().Add(limit); ; {
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil || st.Dev != dev || st.Ino != ino {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
