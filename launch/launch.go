// Package launch starts a program under lptrace and runs Python code in it
// before its first Python call (lptrace [options] -- python3 app.py).
//
// lptrace is the program's parent, so this works for an unprivileged user
// whatever kernel.yama.ptrace_scope says. The sequence:
//
//  1. lptrace re-executes itself as a helper that stops itself (SIGSTOP) and
//     then execs the program: lptrace seizes the stopped helper with
//     PTRACE_O_TRACEEXEC and lets it go, so nothing of the program runs
//     before lptrace sees it.
//  2. At the exec stop, a breakpoint at the program's entry point: there
//     every library is mapped, and the Python runtime can be found. A
//     program that is not Python (a wrapper like env) is followed to its
//     next exec.
//  3. A breakpoint at PyEval_EvalCode, which runs every module's code: at
//     each hit the main thread holds the GIL at a function entry, a safe
//     point. The code runs at the first hit that runs code in the globals
//     of __main__ (the script, -c, -m's module, the interactive prompt),
//     so the interpreter's own start-up (site, its imports) is skipped.
//  4. Breakpoints removed, registers restored, detach: the program runs
//     untraced by ptrace; lptrace waits for its exit as its parent.
//
// Only the thread that execs is traced; a thread started before the
// program's first Python call (rare: a C library's) would die on a
// breakpoint. The breakpoints exist for the start-up only.
package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall" // os/exec takes its SysProcAttr and Credential types; x/sys/unix has none
	"time"

	"github.com/lptrace/lptrace/inject"
	"github.com/lptrace/lptrace/proc"
	"github.com/lptrace/lptrace/ptrace"
	"github.com/lptrace/lptrace/symbols"
	"golang.org/x/sys/unix"
)

// HelperEnv marks lptrace's own re-execution as the launch helper.
const HelperEnv = "LPTRACE_LAUNCH_HELPER"

// RunHelper is the helper's whole life (called from main when HelperEnv is
// set): stop, and once lptrace has seized us and continued us, exec the
// program. It returns only on failure, with the exit status to use.
func RunHelper(argv []string) int {
	os.Unsetenv(HelperEnv)
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "lptrace: cannot run %s: %v\n", argv[0], err)
		return 127
	}
	unix.Kill(os.Getpid(), unix.SIGSTOP)
	err = unix.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "lptrace: cannot run %s: %v\n", argv[0], err)
	return 126
}

// Child is a program started by lptrace.
type Child struct {
	PID    int
	Target *symbols.Target // its Python runtime, once found
	tr     *ptrace.Tracer
	proc   *os.Process
	exit   *ptrace.Stop // set if it ended while lptrace held it
}

// Options is how the program starts (strace's -E and -u).
type Options struct {
	Env  []string            // its environment (nil: lptrace's)
	User *syscall.Credential // run as this user and groups (nil: lptrace's)
}

// Start starts argv through the helper (self: lptrace's own executable) and
// returns the child stopped at the entry point of a Python program.
func Start(ctx context.Context, self string, argv []string, o Options) (*Child, error) {
	if !inject.Supported {
		return nil, inject.ErrUnsupportedArch
	}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	var sys *syscall.SysProcAttr
	if o.User != nil {
		// The helper runs as the user already: the program's exec is the
		// user's own (lptrace, root, traces it all the same).
		sys = &syscall.SysProcAttr{Credential: o.User}
	}
	p, err := os.StartProcess(self, append([]string{"lptrace"}, argv...), &os.ProcAttr{
		Env:   append(env[:len(env):len(env)], HelperEnv+"=1"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   sys,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", argv[0], err)
	}
	c := &Child{PID: p.Pid, tr: ptrace.NewTracer(), proc: p}
	if err := c.seize(); err != nil {
		p.Kill()
		if ps, werr := p.Wait(); werr == nil && ps.Exited() {
			// The helper said why (the program was not found: 127).
			return nil, ErrEnded{Status: ps.ExitCode()}
		}
		return nil, err
	}
	if err := c.toPython(ctx); err != nil {
		if c.exit != nil {
			if c.exit.ExitCode < 0 {
				return nil, ErrEnded{Signal: unix.Signal(-c.exit.ExitCode)}
			}
			return nil, ErrEnded{Status: c.exit.ExitCode}
		}
		p.Kill()
		return nil, err
	}
	return c, nil
}

// ErrEnded is the end of a program before its first Python call (it was
// not found, or is not Python and never exec'd one).
type ErrEnded struct {
	Status int
	Signal unix.Signal
}

func (e ErrEnded) Error() string {
	if e.Signal != 0 {
		return fmt.Sprintf("the program was killed by %v before any Python code ran", e.Signal)
	}
	return fmt.Sprintf("the program exited with status %d before any Python code ran", e.Status)
}

// seize waits for the helper's SIGSTOP, seizes it and lets it go on to its
// exec.
func (c *Child) seize() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := proc.ReadStatus(c.PID)
		if err != nil {
			return fmt.Errorf("the launch helper went away: %w", err)
		}
		if st.State == 'T' {
			break
		}
		if st.State == 'Z' || time.Now().After(deadline) {
			return errors.New("the launch helper did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.tr.Seize(c.PID); err != nil {
		return fmt.Errorf("cannot trace the program: %w", err)
	}
	return unix.Kill(c.PID, unix.SIGCONT)
}

// wait returns the child's next stop; signals that are not lptrace's own
// business are passed on, so the program gets them as if untraced.
func (c *Child) wait(ctx context.Context) (ptrace.Stop, error) {
	for {
		st, err := c.tr.Wait(c.PID, 100*time.Millisecond)
		if err == ptrace.ErrTimeout {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			continue
		}
		if err != nil {
			return st, err
		}
		if st.Exited {
			c.exit = &st
			return st, fmt.Errorf("the program %s before its first Python call", st)
		}
		switch {
		case st.Event == ptrace.EventExec || (st.Event == 0 && st.Signal == int(unix.SIGTRAP)):
			return st, nil
		case st.Event != 0:
			err = c.tr.Cont(c.PID, 0) // group stops and the like
		case st.Signal == int(unix.SIGCONT) || st.Signal == int(unix.SIGSTOP):
			err = c.tr.Cont(c.PID, 0) // the helper's own stop and our SIGCONT
		default:
			err = c.tr.Cont(c.PID, st.Signal)
		}
		if err != nil {
			return st, err
		}
	}
}

// toPython follows the child through its execs to the entry point of a
// program with a Python runtime (wrappers like env and pyenv's shims exec
// it in the end).
func (c *Child) toPython(ctx context.Context) error {
	for {
		st, err := c.wait(ctx)
		if err != nil {
			return err
		}
		if st.Event != ptrace.EventExec {
			// A SIGTRAP of the program's own before any exec: pass it on.
			if err := c.tr.Cont(c.PID, st.Signal); err != nil {
				return err
			}
			continue
		}
		entry, err := proc.EntryPoint(c.PID)
		if err != nil {
			return err
		}
		if err := c.runTo(ctx, entry); err != nil {
			return err
		}
		tgt, err := symbols.Find(c.PID)
		if err == nil {
			c.Target = tgt
			return nil
		}
		if err := c.tr.Cont(c.PID, 0); err != nil {
			return err
		}
	}
}

// runTo lets the child run until it reaches addr, with a breakpoint there,
// and leaves it stopped at addr with the code as it was.
func (c *Child) runTo(ctx context.Context, addr uint64) error {
	orig, err := c.insert(addr)
	if err != nil {
		return err
	}
	if err := c.tr.Cont(c.PID, 0); err != nil {
		return err
	}
	for {
		st, err := c.wait(ctx)
		if err != nil {
			if c.exit == nil {
				c.disarm(addr, orig)
			}
			return err
		}
		if st.Event == ptrace.EventExec {
			return errors.New("the program exec'd again before its entry point")
		}
		regs, err := c.tr.GetRegs(c.PID)
		if err != nil {
			return err
		}
		if regs.PC() == addr+breakpointAdvance {
			if err := c.tr.PokeText(c.PID, wordOf(addr), orig); err != nil {
				return err
			}
			regs.SetPC(addr)
			return c.tr.SetRegs(c.PID, regs)
		}
		if err := c.tr.Cont(c.PID, st.Signal); err != nil { // the program's own SIGTRAP
			return err
		}
	}
}

// disarm takes the breakpoint at addr away when lptrace gives up waiting
// for it (interrupted, --duration): the child is stopped, the code put
// back, and a thread already trapped on it is moved back to addr.
func (c *Child) disarm(addr uint64, orig []byte) {
	c.tr.Interrupt(c.PID)
	for i := 0; i < 50; i++ {
		st, err := c.tr.Wait(c.PID, 100*time.Millisecond)
		if err == ptrace.ErrTimeout {
			continue
		}
		if err != nil {
			return
		}
		if st.Exited {
			c.exit = &st
			return
		}
		break
	}
	c.tr.PokeText(c.PID, wordOf(addr), orig)
	if regs, err := c.tr.GetRegs(c.PID); err == nil && regs.PC() == addr+breakpointAdvance {
		regs.SetPC(addr)
		c.tr.SetRegs(c.PID, regs)
	}
}

// insert writes a breakpoint at addr and returns the aligned word of code
// it changed (at wordOf(addr)): a function need not start on 8 bytes (musl
// builds of CPython have odd ones), and PokeText writes whole words.
func (c *Child) insert(addr uint64) ([]byte, error) {
	orig := make([]byte, 8)
	if err := proc.VMRead(c.PID, wordOf(addr), orig); err != nil {
		return nil, fmt.Errorf("read the code at %#x: %w", addr, err)
	}
	bp := append([]byte(nil), orig...)
	copy(bp[addr-wordOf(addr):], breakpointInsn)
	if err := c.tr.PokeText(c.PID, wordOf(addr), bp); err != nil {
		return nil, fmt.Errorf("write a breakpoint at %#x: %w", addr, err)
	}
	return orig, nil
}

// wordOf is the 8-byte word that holds the instruction at addr (a
// breakpoint instruction never crosses one: 1 byte on x86-64, 4 aligned
// bytes on arm64).
func wordOf(addr uint64) uint64 { return addr &^ 7 }

// RunPython runs src in the child before its first Python call, then lets
// the child go: it runs on untraced.
func (c *Child) RunPython(ctx context.Context, src []byte) error {
	s, err := c.Target.Python.Lookup("PyEval_EvalCode")
	if err != nil {
		return err
	}
	inj := inject.New(c.tr, c.Target)
	defer inj.Close()
	for {
		if err := c.runTo(ctx, s.Addr); err != nil {
			return err
		}
		regs, err := c.tr.GetRegs(c.PID)
		if err != nil {
			return err
		}
		th, err := inj.Adopt(c.PID)
		if err != nil {
			return err
		}
		// PyEval_EvalCode(code, globals, locals): the program's code runs
		// in the globals of __main__.
		ran, err := inj.RunPythonAtEntry(ctx, th, src, secondArg(&regs))
		if err != nil {
			inj.Finish(th)
			return err
		}
		if ran {
			inj.Finish(th)
			return nil
		}
		// Start-up imports: step over the entry's first instruction (the
		// breakpoint goes back before the next run).
		if err := c.tr.SingleStep(c.PID); err != nil {
			return err
		}
		if _, err := c.wait(ctx); err != nil {
			return err
		}
	}
}

// Status is how the child ended, in waitpid's form, once Wait returned.
func (c *Child) Status() (int, bool) {
	if c.exit == nil {
		return 0, false
	}
	return c.exit.Status, true
}

// Detach lets the child run untraced (when RunPython was not called or
// failed). The child must be stopped.
func (c *Child) Detach() { c.tr.Detach(c.PID, 0) }

// Signal sends sig to the child.
func (c *Child) Signal(sig os.Signal) { c.proc.Signal(sig) }

// Wait waits for the child's end: its exit status, or the signal that
// killed it.
func (c *Child) Wait() (status int, signal unix.Signal, err error) {
	for c.exit == nil {
		st, err := c.tr.Wait(c.PID, 0)
		if err != nil {
			return 0, 0, err
		}
		if st.Exited {
			c.exit = &st
			break
		}
		// Still traced (a detach that failed): let it go, its signal with it.
		sig := 0
		if st.Event == 0 {
			sig = st.Signal
		}
		c.tr.Detach(c.PID, sig)
	}
	if c.exit.ExitCode < 0 {
		return 0, unix.Signal(-c.exit.ExitCode), nil
	}
	return c.exit.ExitCode, 0, nil
}
