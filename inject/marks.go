package inject

// Headroom is how many frames the recursion limit is raised by while
// lptrace's code runs in the program: the code runs at whatever depth the
// thread was, and in a program recursing near its limit it had no frame
// left (PyRun_SimpleString's own compilation of the statement failed, and
// the interpreter printed that on the program's stderr; a tracing hook's
// callback added a RecursionError to the program). Raised by the calls
// around PyRun_SimpleString, and lowered by as much afterwards: the code
// keeps the limit the program set meanwhile, and a tracing session keeps
// its headroom by raising the limit once more (hook/trace.py).
//
// Before 3.11 the headroom is the thread's own: its depth counter goes
// down by as much around the code, and back up. There a thread deeper
// than the limit + 50 after a RecursionError aborts the program ("Cannot
// recover from stack overflow", 3.6-3.8): another thread that recursed past
// the raised limit while the code ran would have been deeper than that
// once the limit came down.
const Headroom = 100

// headroom is the C API that raises and lowers the limit, or where the
// thread's depth counter is (depthAt: its offset in the thread state,
// before 3.11).
type headroom struct{ get, set, depthAt uint64 }

func (inj *Injector) headroom() headroom {
	v := inj.tgt.Version
	switch {
	case v.Major == 2 && v.Minor == 7:
		return headroom{depthAt: 24} // PyThreadState.recursion_depth, 64-bit
	case v.Major == 3 && v.Minor < 11:
		return headroom{depthAt: 32}
	}
	return headroom{get: inj.pySym("Py_GetRecursionLimit"), set: inj.pySym("Py_SetRecursionLimit")}
}

// around appends run with Headroom around it, and sets *at to run's
// index; tstate is the call whose result is the thread's state (1-based:
// see tracingMark.enterCalls; 0 if none).
func (h headroom) around(calls []Call, run Call, at *int, tstate byte) []Call {
	if h.depthAt != 0 {
		if tstate == 0 {
			*at = len(calls)
			return append(calls, run)
		}
		calls = append(calls, Call{Fn: FnAddInt32, ArgFrom: [6]byte{tstate}, Args: [6]uint64{0, h.depthAt, uint64(uint32(neg32(Headroom)))}})
		*at = len(calls)
		return append(calls, run, Call{Fn: FnAddInt32, ArgFrom: [6]byte{tstate}, Args: [6]uint64{0, h.depthAt, Headroom}})
	}
	if h.get == 0 || h.set == 0 {
		*at = len(calls)
		return append(calls, run)
	}
	k := byte(len(calls))
	calls = append(calls,
		Call{Fn: h.get},
		Call{Fn: FnSub, ArgFrom: [6]byte{k + 1}, Args: [6]uint64{0, uint64(neg(Headroom))}},
		Call{Fn: h.set, ArgFrom: [6]byte{k + 2}})
	*at = len(calls)
	calls = append(calls, run)
	k = byte(len(calls))
	return append(calls,
		Call{Fn: h.get},
		Call{Fn: FnSub, ArgFrom: [6]byte{k + 1}, Args: [6]uint64{0, Headroom}},
		Call{Fn: h.set, ArgFrom: [6]byte{k + 2}})
}

func neg(n int64) int64 { return -n }

func neg32(n int32) int32 { return -n }

// tracingMark says how injected code marks its thread as tracing while it
// runs (tstate->tracing + 1, as CPython does around a trace or profile
// function): the interpreter then calls no trace or profile function and no
// sys.monitoring callback for it, and the program's tools never see
// lptrace's code. 3.11+: PyThreadState_EnterTracing/LeaveTracing (3.11 also
// recomputes the frame's use_tracing on leaving, which a bare decrement
// would leave off). Before: the int32 at its offset in PyThreadState, the
// same in every build of a version (Cython's profiling reads it). The zero
// value marks nothing.
type tracingMark struct{ get, enter, leave, off uint64 }

func (inj *Injector) tracingMark() tracingMark {
	v := inj.tgt.Version
	get := inj.pySym("PyThreadState_Get")
	if get == 0 {
		return tracingMark{}
	}
	if v.AtLeast(3, 11) {
		enter, leave := inj.pySym("PyThreadState_EnterTracing"), inj.pySym("PyThreadState_LeaveTracing")
		if enter == 0 || leave == 0 {
			return tracingMark{}
		}
		return tracingMark{get: get, enter: enter, leave: leave}
	}
	// offsetof(PyThreadState, tracing) on 64-bit Linux.
	var off uint64
	switch {
	case v.Major == 2 && v.Minor == 7:
		off = 28
	case v.Major == 3 && v.Minor == 6:
		off = 40
	case v.Major == 3 && v.Minor >= 7:
		off = 44 // 3.7-3.10
	default:
		return tracingMark{}
	}
	return tracingMark{get: get, off: off}
}

// enterCalls appends the calls that mark the thread (the GIL held), and
// tells which call's result is its thread state (1-based, 0 if none).
func (m tracingMark) enterCalls(calls []Call) ([]Call, byte) {
	if m.get == 0 {
		return calls, 0
	}
	calls = append(calls, Call{Fn: m.get})
	at := byte(len(calls))
	if m.enter != 0 {
		return append(calls, Call{Fn: m.enter, ArgFrom: [6]byte{at}}), at
	}
	return append(calls, Call{Fn: FnAddInt32, Args: [6]uint64{0, m.off, 1}, ArgFrom: [6]byte{at}}), at
}

// leaveCalls appends the calls that unmark it.
func (m tracingMark) leaveCalls(calls []Call, at byte) []Call {
	if at == 0 {
		return calls
	}
	if m.leave != 0 {
		return append(calls, Call{Fn: m.leave, ArgFrom: [6]byte{at}})
	}
	return append(calls, Call{Fn: FnAddInt32, Args: [6]uint64{0, m.off, 0xffffffff}, ArgFrom: [6]byte{at}})
}
