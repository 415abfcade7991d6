# The thread states of the interpreter, read and changed from Python with
# ctypes (2.7 to 3.11, where a profile function is per thread): used by the
# tracing hook to set the profile function of every thread (trace.py,
# hook_all_threads), and by the machine-code callback (native.py).


def _lptrace_thread_state_layout(me):
    """What hook_all_threads (trace.py) needs to set other threads' profile
    functions (Python 2.7 to 3.11), or None: (ctypes, the profile
    trampoline, walk, gate). walk(decide, gated) calls decide(ident,
    function, object) for every thread state of this interpreter, which
    returns the new (function, object) or None, and sets those in one C
    call (native_threads_amd64.s): a thread may end and its state be freed
    at any switch between two bytecodes, so no Python code may hold a
    state's address. It returns (ident, result) of each change asked: 1
    done, else the thread ended or changed meanwhile, or an audit hook
    refused. A gated walk changes nothing once gate.value is 0. Offsets are
    read from this thread's own state (ident me), as
    _lptrace_profile_trampoline does. Machine code only: elsewhere, None."""
    import sys
    if not _lptrace_x86_64():
        return None
    import ctypes
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's settings are the program's
    if ctypes.addressof(ctypes.c_char.in_dll(api, '_Py_NoneStruct')) != id(None):
        return None  # another runtime's symbols come first in this process
    found = _lptrace_profile_trampoline(api, ctypes)
    if found is None:
        return None
    trampoline, slot = found
    vp = ctypes.c_void_p
    api.PyThreadState_Get.restype, api.PyThreadState_Get.argtypes = vp, []
    api.Py_DecRef.restype, api.Py_DecRef.argtypes = None, [vp]
    api.Py_IncRef.restype, api.Py_IncRef.argtypes = None, [vp]
    mine = api.PyThreadState_Get()
    words = (ctypes.c_ulong * 64).from_address(mine)
    at = [i for i in range(64) if words[i] == me]
    if len(at) != 1:
        return None
    ident_at = at[0] * 8
    tracing_at = 0
    setter = 0
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
    else:
        # 3.9+: one call sets a thread's function, object and flag.
        setter = ctypes.cast(api._PyEval_SetProfile, vp).value
    page = _lptrace_code_page(_LPTRACE_NATIVE_THREADS_CODE, (), ctypes, _lptrace_libc(ctypes))
    if page is None:
        return None
    taddr, text = page
    entry = lambda name, *types: ctypes.PYFUNCTYPE(*types)(taddr + _LPTRACE_NATIVE_THREADS_ENTRIES[name])
    snapshot, swap = entry('snapshot', ctypes.c_size_t, vp), entry('swap', None, vp)
    cap = 2048
    table = (ctypes.c_uint64 * (16 + 8 * cap))()
    fn = lambda name: ctypes.cast(getattr(api, name), vp).value
    table[1:11] = [cap, 8 * slot, tracing_at, setter, ident_at, fn('PyInterpreterState_Head'),
                   fn('PyInterpreterState_Next'), fn('PyInterpreterState_ThreadHead'),
                   fn('PyThreadState_Next'), fn('Py_IncRef')]
    gate = ctypes.c_uint64(1)
    at = ctypes.addressof(table)

    def walk(decide, gated, keep=(text, table, gate)):
        table[0] = api.PyThreadState_Get()
        table[13] = ctypes.addressof(gate) if gated else 0
        n = snapshot(at)
        asked, taken, given = [], [], []
        try:
            for i in range(n):
                e = 16 + 8 * i
                ident, func, obj = table[e + 1], table[e + 2], table[e + 3]
                if obj:
                    taken.append(obj)  # snapshot's reference: obj stays alive
                change = decide(ident, func, obj)
                if change is None:
                    table[e] = 0  # never matched
                    continue
                table[e + 4], table[e + 5] = change[0] or 0, change[1] or 0
                if not setter and change[1]:
                    api.Py_IncRef(change[1])  # the state's, if swap sets it
                    given.append(change[1])
                asked.append(i)
            swap(at)
            given = []
            out = []
            for i in asked:
                e = 16 + 8 * i
                done = table[e + 6] == 1
                if not setter:
                    # The old object's reference is ours if it was swapped,
                    # the new one's if not.
                    drop = table[e + 3] if done else table[e + 5]
                    if drop:
                        taken.append(drop)
                out.append((table[e + 1], done))
            return out
        finally:
            for obj in taken + given:
                api.Py_DecRef(obj)
    return ctypes, trampoline, walk, gate


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
