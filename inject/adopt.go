package inject

import (
	"context"
	"fmt"
)

// Adopt takes a thread that the injector's tracer already holds stopped at
// a point lptrace chose (launch mode: a breakpoint at a function entry), so
// that calls can run in it. The caller releases it with Finish.
func (inj *Injector) Adopt(tid int) (*Thread, error) {
	regs, err := inj.tr.GetRegs(tid)
	if err != nil {
		return nil, err
	}
	if inj.xsave == 0 {
		if inj.xsave, err = checkArch(inj.tr, tid); err != nil {
			return nil, err
		}
	}
	th := &Thread{TID: tid, inj: inj, orig: regs}
	th.Syscall, th.InCall = inj.syscallAt(tid, &regs)
	return th, nil
}

// Finish puts back the trampoline's bytes and detaches from the thread,
// which resumes where it stopped.
func (inj *Injector) Finish(th *Thread) { inj.finish(th) }

// RunPythonAtEntry runs src in th, stopped at the entry of a function that
// the interpreter calls with the GIL held and its state consistent (launch
// mode stops the main thread at PyEval_EvalCode), if the interpreter is
// initialized and, when globals is not 0, globals is the dict of module
// __main__ (the program's own code is starting, not an import of the
// interpreter's start-up). It returns whether src ran.
func (inj *Injector) RunPythonAtEntry(ctx context.Context, th *Thread, src []byte, globals uint64) (bool, error) {
	const mainName = "__main__\x00"
	code := append(append([]byte(nil), src...), 0)
	if why := inj.stackTooSmall(th, directStackNeed, 6); why != "" {
		return false, fmt.Errorf("%s", why)
	}
	size := pageRound(uint64(len(code) + len(mainName)))
	buf, err := inj.mmapBuffer(ctx, th, size)
	if err != nil {
		return false, err
	}
	defer th.Run(ctx, []Call{munmapCall(buf, size, Always)})
	name := buf + uint64(len(code))
	if err := inj.writeMem(th.TID, buf, append(code, mainName...)); err != nil {
		return false, err
	}
	sym := inj.pySym
	_, aborted, err := th.Run(ctx, []Call{{Fn: sym("Py_IsInitialized"), Flags: AbortIfZero}})
	if err != nil || aborted >= 0 {
		return false, err
	}
	if globals != 0 {
		res, _, err := th.Run(ctx, []Call{
			{Fn: sym("PyGILState_Ensure")}, // the thread holds the GIL: this nests
			{Fn: sym("PyImport_AddModule"), Args: [6]uint64{name}, Flags: AbortIfZero},
			{Fn: sym("PyModule_GetDict"), ArgFrom: [6]byte{2}},
			{Fn: sym("PyGILState_Release"), ArgFrom: [6]byte{1}, Flags: Always},
		})
		if err != nil || res[2] != globals {
			return false, err
		}
	}
	var run int
	calls, at := inj.tracingMark().enterCalls([]Call{{Fn: sym("PyGILState_Ensure")}})
	calls = inj.headroom().around(calls, Call{Fn: sym("PyRun_SimpleString"), Args: [6]uint64{buf}}, &run, at)
	calls = inj.tracingMark().leaveCalls(calls, at)
	if _, _, err := th.Run(ctx, append(calls, Call{Fn: sym("PyGILState_Release"), ArgFrom: [6]byte{1}})); err != nil {
		return false, err
	}
	return true, nil
}
