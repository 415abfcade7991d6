package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lptrace/lptrace/hook"
	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/launch"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
	"github.com/lptrace/lptrace/termsafe"
	"github.com/lptrace/lptrace/trace"
	"github.com/lptrace/lptrace/transport"
	"golang.org/x/sys/unix"
)

// Output is where a trace's events and closing lines go: the text or JSON
// printer (report.Printer).
type Output interface {
	Event(trace.Event)
	ShowPID() // events of several processes: each line names its own
	ShowTID() // of several threads
	Flush() error
	AddDropped(uint64)
	Exit(pid, status int, known bool)
}

// Trace is the tracing of one process (and, with -f, the children it
// forks): the hook installed, its events streamed to Output until the
// context ends or the process does, then the hook removed.
type Trace struct {
	PID      int
	Timeout  time.Duration // for the install: no thread reached a safe point
	Duration time.Duration // of the trace, from the attach on (0: until Ctrl-C)
	Config   hook.TraceConfig
	Output   Output
	Messages io.Writer // lptrace's own lines ("lptrace: process N attached")
	// ToFile: -o, the trace (and its closing lines) goes to a file; the
	// terminal is told of the end too.
	ToFile bool
	Quiet  int               // -q, -qq (see note)
	Sink   func(trace.Event) // lptrace record: the events go there, not to Output

	program    string          // proc.ProgramID at the start: tells an exec
	follow     bool            // the hook follows forks (-f, and Python 3.7+)
	child      *launch.Child   // the program launch mode started (lptrace its parent)
	exit       *proc.ExitWatch // how the process ends (attach mode)
	droppedNow atomic.Uint64   // the events dropped so far (record's progress line)
	exitsMu    sync.Mutex
	exits      []childEnd // followed children that ended, their lines not written yet
	// allHooked is closed when the hook (before 3.12) has set the profile
	// function of every thread that existed at attach.
	allHooked  chan struct{}
	hookedOnce sync.Once
}

// Dropped is how many events the hook dropped so far (its ring was full).
func (a *Trace) Dropped() uint64 { return a.droppedNow.Load() }

func (a *Trace) say(format string, args ...any) {
	fmt.Fprintf(a.Messages, "lptrace: "+format+"\n", args...)
}

// note says what -q silences: a process attached, started, detached; and
// -qq how it ended.
func (a *Trace) note(quiet int, format string, args ...any) {
	if a.Quiet < quiet {
		a.say(format, args...)
	}
}

// Run installs the hook in a.PID and prints its events until ctx ends or
// the target goes away.
func (a *Trace) Run(ctx context.Context) error {
	o, err := Open(a.PID, EventPipe, func(m string) { a.say("%s", m) })
	if err != nil {
		return err
	}
	defer o.Close()
	tgt, ch, inj := o.tgt, o.ch, o.inj
	session := newSession()
	a.program = tgt.Program
	a.addRing(ch, o.st.UID[1], o.st.GID[1])

	a.exit = proc.WatchExit(a.PID)
	defer a.exit.Close()
	ch.OnEnd = a.exit.Note
	recs, started := ch.Stream()
	tids, _ := proc.Threads(a.PID) // before the hook adds its timer thread
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
	end := time.Now().Add(a.Timeout)
	var route inject.Route
	for failures, try := 0, 0; ; try++ {
		code, opt := install(try)
		opt.Timeout, opt.Started = max(time.Until(end), 0), started
		var err error
		route, err = inj.RunPython(ctx, code, opt)
		if err != nil {
			return explainRun(ctx, a.PID, a.Timeout, "the hook", err)
		}
		Phase(fmt.Sprintf("injected (%s; stopped again %d times)", route, inj.Restops()))
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
				ptrace.Tgkill(a.PID, route.TID, int(unix.SIGINT))
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
					return fmt.Errorf("process %d: the hook's install ran %d times without reporting back (the program's signal handlers interrupted it, or it found no free sys.monitoring tool ID, or could not open lptrace's pipe); try again", a.PID, failures)
				}
			}
			continue
		case <-ctx.Done():
			return fmt.Errorf("interrupted before the hook started; process %d left as it was", a.PID)
		case <-time.After(time.Until(end)):
			return notReached(a.PID, a.Timeout, route, "the hook")
		}
		break
	}
	if why := ch.Refused(); why != "" {
		return fmt.Errorf("process %d: the hook refused to start: %s", a.PID, termsafe.Escape([]byte(why), false))
	}
	if len(tids) > 1 {
		a.Output.ShowTID()
	}
	Phase("hook started")
	a.note(1, "process %d attached (Python %s, %s)", a.PID, tgt.Version, plural(len(tids), "thread"))
	a.warnFollow(tgt.Version)

	// Before 3.12 each thread that already exists hooks itself: the engine
	// runs the per-thread installer in each one at a safe point, and keeps
	// trying for threads that are busy now.
	hookCtx, stopHooking := context.WithCancel(ctx)
	var hooking sync.WaitGroup
	a.allHooked = make(chan struct{})
	if !tgt.Version.AtLeast(3, 12) {
		hooked := map[int]bool{ranInstall(route, a.PID): true}
		hooking.Add(1)
		go func() {
			defer hooking.Done()
			a.hookThreads(hookCtx, inj, session, hooked, tids)
		}()
	}
	if a.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Duration)
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
func (a *Trace) hookThreads(ctx context.Context, inj *inject.Injector, session string, hooked map[int]bool, atAttach []int) {
	src := hook.TraceThread(session)
	never := make(chan struct{})
	// Only threads that existed at attach can lack the hook (later ones get
	// it from threading.setprofile); the main thread had it at attach.
	firstTry := map[int]time.Time{}
	warned := map[int]bool{}
	existed := map[int]bool{}
	for _, tid := range atAttach {
		existed[tid] = tid != a.PID
	}
	for round := 0; ; round++ {
		rehook := (round < 30 && round%3 == 2 || round%15 == 14) && !inEpollWait(a.PID)
		select {
		case <-a.allHooked:
			// The hook set every thread's profile function itself: only
			// the main thread's periodic re-hook remains.
			for _, tid := range atAttach {
				hooked[tid] = true
			}
			for tid := range warned {
				a.note(1, "process %d: thread %d is traced now", a.PID, tid)
				delete(warned, tid)
			}
		default:
		}
		if rehook {
			delete(hooked, a.PID)
		}
		tids, err := proc.Threads(a.PID)
		if err != nil {
			return
		}
		for _, tid := range tids {
			if hooked[tid] || ctx.Err() != nil {
				continue
			}
			if _, err := inj.RunPython(ctx, src, inject.Options{Timeout: 300 * time.Millisecond, Started: never, TID: tid, Small: true}); err == nil {
				hooked[tid] = true
				if warned[tid] {
					a.note(1, "process %d: thread %d is traced now", a.PID, tid)
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
				a.say("process %d: thread %d (%s) is not traced: it never waits in a blocking call, where lptrace could hook it; still trying", a.PID, tid, termsafe.Escape([]byte(proc.ThreadName(a.PID, tid)), false))
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
func (a *Trace) ringSlots() int {
	if a.Config.Follow {
		return 8
	}
	return 1
}

// addRing makes the ring the hook shares with lptrace (transport.Ring),
// owned by the target's user; without one the records go through the
// pipe, and what a program recorded just before it died may be lost.
func (a *Trace) addRing(ch *transport.Channel, uid, gid int) {
	_, p, err := ch.AddRing(uid, gid, a.ringSlots())
	if err != nil {
		a.say("warning: no memory shared with process %d (%v): the events it records right before it dies may be lost", a.PID, err)
		return
	}
	a.Config.Ring, a.Config.RingSlots = p, a.ringSlots()
}

// hookConfig is the hook's configuration for Python v: -f only where the
// hook can follow (before 3.7 a child would trace into a pipe nobody reads
// it from). It is also what the stream loop goes by.
func (a *Trace) hookConfig(v symbols.Version) hook.TraceConfig {
	cfg := a.Config
	if !v.AtLeast(3, 7) {
		cfg.Follow = false
	}
	a.follow = cfg.Follow
	return cfg
}

// warnFollow says when -f cannot work: the hook follows a fork from
// os.register_at_fork, new in 3.7.
func (a *Trace) warnFollow(v symbols.Version) {
	if a.Config.Follow && !v.AtLeast(3, 7) {
		a.say("-f needs Python 3.7 or newer (os.register_at_fork): the children of process %d will not be traced", a.PID)
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
