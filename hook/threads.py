# The thread states of the interpreter, read and changed from Python with
# ctypes (2.7 to 3.11, where a profile function is per thread): used by the
# tracing hook to set the profile function of every thread (trace.py,
# hook_all_threads), and by the machine-code callback (native.py).


def _lptrace_thread_state_layout(me):
    """What hook_all_threads (trace.py) needs to set another thread's profile
    function (Python 2.7 to 3.11), or None: (api, ctypes, the profile
    trampoline, the word index of c_profilefunc, the byte offsets of the
    thread's ident and of its use_tracing flag (2.7-3.8; 3.9+ set it
    themselves), and a function listing this interpreter's thread states).
    All read from this thread's own state (ident me), as
    _lptrace_profile_trampoline does."""
    import sys
    import ctypes
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's settings are the program's
    if ctypes.addressof(ctypes.c_char.in_dll(api, '_Py_NoneStruct')) != id(None):
        return None  # another runtime's symbols come first in this process
    found = _lptrace_profile_trampoline(api, ctypes)
    if found is None:
        return None
    trampoline, slot = found
    vp = ctypes.c_void_p
    for name, args in (('PyThreadState_Get', []), ('PyInterpreterState_Head', []), ('PyInterpreterState_Next', [vp]),
                       ('PyInterpreterState_ThreadHead', [vp]), ('PyThreadState_Next', [vp])):
        f = getattr(api, name)
        f.restype, f.argtypes = vp, args
    api.Py_DecRef.restype, api.Py_DecRef.argtypes = None, [vp]
    mine = api.PyThreadState_Get()
    words = (ctypes.c_ulong * 64).from_address(mine)
    at = [i for i in range(64) if words[i] == me]
    if len(at) != 1:
        return None
    ident_at = at[0] * 8
    tracing_at = None
    if sys.version_info < (3, 9):
        # use_tracing: the int before c_profilefunc that sys.setprofile
        # turns on and off (this thread has no trace function).
        if sys.gettrace() is not None:
            return None
        prev = sys.getprofile()
        ints = (ctypes.c_int * (2 * slot)).from_address(mine)
        try:
            sys.setprofile(None)
            off = list(ints)
            sys.setprofile(lambda frame, what, arg: None)
            on = list(ints)
        finally:
            sys.setprofile(prev)
        flag = [i for i in range(2 * slot - 2, 2 * slot) if (off[i], on[i]) == (0, 1)]
        if len(flag) != 1:
            return None
        tracing_at = flag[0] * 4

    def threads_of():
        # This thread's interpreter's thread states.
        interp = api.PyInterpreterState_Head()
        while interp:
            states = []
            state = api.PyInterpreterState_ThreadHead(interp)
            while state:
                states.append(state)
                state = api.PyThreadState_Next(state)
            if mine in states:
                return states
            interp = api.PyInterpreterState_Next(interp)
        return []
    return api, ctypes, trampoline, slot, ident_at, tracing_at, threads_of


def _lptrace_profile_trampoline(api, ctypes):
    # The C function sys.setprofile() installs (profile_trampoline, static
    # in sysmodule.c): read from this thread's state after two
    # sys.setprofile() calls, as the word two before the one holding the
    # profile object (c_profilefunc, c_tracefunc, c_profileobj: the same
    # order in 2.7 to 3.11). The thread's own profile function, if any, is
    # put back as it was, its C function included (cProfile's).
    import sys
    get_state = api.PyThreadState_Get
    get_state.restype = ctypes.c_void_p
    get_state.argtypes = []
    set_profile = api.PyEval_SetProfile
    set_profile.restype = None
    set_profile.argtypes = [ctypes.c_void_p, ctypes.py_object]
    state = (ctypes.c_void_p * 16).from_address(get_state())  # c_profileobj is word 7 to 10
    prev = sys.getprofile()
    probe_a = lambda frame, what, arg: None
    probe_b = lambda frame, what, arg: None
    before = [w or 0 for w in state]
    a = b = None
    try:
        sys.setprofile(probe_a)
        a = [w or 0 for w in state]
        sys.setprofile(probe_b)
        b = [w or 0 for w in state]
    finally:
        at = [i for i, w in enumerate(a or ()) if w == id(probe_a)]
        if prev is None:
            sys.setprofile(None)
        elif len(at) == 1 and at[0] >= 2 and before[at[0]] == id(prev) and before[at[0] - 2]:
            set_profile(before[at[0] - 2], prev)
        else:
            sys.setprofile(prev)
            at = ()
    if len(at) != 1 or at[0] < 2 or b[at[0]] != id(probe_b):
        return None
    f = a[at[0] - 2]
    if f == 0 or b[at[0] - 2] != f:
        return None
    return f, at[0] - 2
