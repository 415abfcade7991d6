# Shared by lptrace's payloads (prepended to exec.py and trace.py).

def _lptrace_open_fifo(fifo, fifo_id, reading=False, keep=False, sink=None):
    """Opens lptrace's FIFO for writing, never blocking (or for reading,
    blocking, when reading), and only if it is the very FIFO lptrace made
    (device, inode, owner, change time): a FIFO planted at the same path
    after lptrace removed its own gets nothing. Removes the path at once,
    unless keep (see _lptrace_remove_fifo). Returns the descriptor, or -1
    (then run nothing). With sink, the descriptor is in sink['fd'] from the
    moment it exists: the caller closes it whatever interrupts this."""
    import os
    import stat
    mode = os.O_RDONLY if reading else os.O_WRONLY
    # 2.7's os has no O_CLOEXEC: its Linux value (amd64 and arm64), so that
    # a program that execs does not carry our pipe into the new program.
    flags = mode | os.O_NONBLOCK | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0o2000000)
    if sink is None:
        sink = {}
    try:
        sink['fd'] = os.open(fifo, flags)
    except OSError:
        if not keep:
            _lptrace_remove_fifo(fifo)  # lptrace is gone: its leftovers go
        return -1
    fd = sink['fd']
    try:
        st = os.fstat(fd)
        dev, ino, uid, ctime = fifo_id.split(':')
        ok = (stat.S_ISFIFO(st.st_mode) and st.st_dev == int(dev) and st.st_ino == int(ino) and
              st.st_uid == int(uid) and _lptrace_same_time(st, int(ctime)))
    except OSError:
        ok = False
    if ok and reading:
        try:
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        except Exception:
            ok = False
    if not ok:
        os.close(sink.pop('fd'))
        return -1
    if not keep:
        _lptrace_remove_fifo(fifo)
    return fd


def _lptrace_open_checked(path, ident, flags):
    """Opens lptrace's regular file at PATH (its ring) with FLAGS, never
    following a link, only if it is the very file lptrace made (device,
    inode, owner, change time: IDENT); the descriptor, or -1."""
    import os
    import stat
    try:
        fd = os.open(path, flags | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0o2000000))
    except OSError:
        return -1
    try:
        st = os.fstat(fd)
        dev, ino, uid, ctime = ident.split(':')
        if (stat.S_ISREG(st.st_mode) and st.st_dev == int(dev) and st.st_ino == int(ino) and
                st.st_uid == int(uid) and _lptrace_same_time(st, int(ctime))):
            return fd
    except (OSError, ValueError):
        pass
    os.close(fd)
    return -1


def _lptrace_remove_fifo(fifo):
    # No os.path: a hook already in place would trace its Python code.
    import os
    where = fifo[:fifo.rindex('/')]
    for remove, p in ((os.unlink, fifo), (os.unlink, where + '/ring'), (os.rmdir, where)):
        try:
            remove(p)
        except OSError:
            pass


def _lptrace_same_time(st, ns):
    # The inode number of a removed file is reused at once on some file
    # systems; its change time (nanoseconds, set at creation) is not.
    if hasattr(st, 'st_ctime_ns'):
        return st.st_ctime_ns == ns
    return abs(st.st_ctime - ns / 1e9) < 2e-6


def _lptrace_sigpipe_guard():
    """Returns call(f, *args): f run with SIGPIPE blocked in this thread when
    the program has set SIGPIPE to SIG_DFL (a write to a pipe whose reader
    died would kill it); a SIGPIPE raised meanwhile is consumed."""
    try:
        import _signal as signal  # 3.x: the C module, without the enum import of signal
    except ImportError:
        import signal
    try:
        if signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN:
            return lambda f, *a: f(*a)
        ctypes = _lptrace_ctypes()
        if ctypes is None:
            return _lptrace_sigpipe_guard_signal(signal)
        libc = ctypes.CDLL(None, use_errno=True)
        block = ctypes.create_string_buffer(128)
        libc.sigemptyset(block)
        libc.sigaddset(block, signal.SIGPIPE)
        zero = ctypes.create_string_buffer(16)
        # Made once: create_string_buffer is Python code, which a trace
        # would show (3.12+ traces every thread). One caller at a time:
        # each user of the guard serializes its writes.
        old = ctypes.create_string_buffer(128)
        pending = ctypes.create_string_buffer(128)
    except Exception:
        return _lptrace_sigpipe_guard_signal(signal)

    def guarded(f, *a):
        libc.pthread_sigmask(0, block, old)
        try:
            return f(*a)
        finally:
            if libc.sigpending(pending) == 0 and libc.sigismember(pending, signal.SIGPIPE) == 1:
                libc.sigtimedwait(block, None, zero)
            libc.pthread_sigmask(2, old, None)
    return guarded


def _lptrace_ctypes():
    """ctypes, or None where it is missing (musl builds without libffi) or
    its import is not safe: on a free-threaded build (a "t" in
    sys.abiflags) the import hangs while other threads compute (seen on
    3.13t, in the program's own code too: a class made with a metaclass
    waits for the type lock for good), so there only a ctypes the program
    imported already is used."""
    import sys
    if 't' in getattr(sys, 'abiflags', '') and 'ctypes' not in sys.modules:
        return None
    try:
        import ctypes
    except ImportError:
        return None
    return ctypes


def _lptrace_sigpipe_guard_signal(signal):
    """The guard without ctypes (musl builds without libffi): the signal
    module's own calls, 3.3+. They run the program's pending signal
    handlers on their way out, which the callers handle as a handler that
    raised inside our code; without the guard, SIGPIPE at SIG_DFL would
    kill the program when lptrace goes away."""
    try:
        mask, pending, wait = signal.pthread_sigmask, signal.sigpending, signal.sigtimedwait
        sigpipe, block, unblock = signal.SIGPIPE, signal.SIG_BLOCK, signal.SIG_UNBLOCK
    except AttributeError:
        return lambda f, *a: f(*a)

    def guarded(f, *a):
        old = mask(block, (sigpipe,))
        try:
            return f(*a)
        finally:
            if sigpipe in pending():
                wait((sigpipe,), 0)
            if sigpipe not in old:
                mask(unblock, (sigpipe,))
    return guarded


def _lptrace_raised_by_program(sys=__import__('sys'), an_exception=Exception):
    """Inside an except clause: whether the exception being handled comes
    from the program's code (a signal handler of its own that ran inside
    our code, like a SIGALRM timeout) rather than from ours: its innermost
    frame is not one of ours. Its names are bound when it is made: a
    callback that runs on after its session ended finds the payload's
    globals cleared, builtins included, and an import here then raised
    ImportError into the program's thread, which it ended (2.7)."""
    tb = sys.exc_info()[2]
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_code.co_filename != '<lptrace>':
        return True
    # 3.6-3.8: our code ran out of recursion limit (a program deep in its
    # own recursion). Swallowed as is, the error would leave the thread's
    # "overflowed" state on, which lets the program's recursion run 50
    # frames past its limit, then aborts the process ("Cannot recover from
    # stack overflow"): the state is put back as it was before our code
    # ran. (ctypes reports the error in its argument conversion as an
    # ArgumentError.) Names by their class's name: no global is needed.
    if (3, 6) <= sys.version_info < (3, 9):
        try:
            exc = sys.exc_info()[1]
            kind = exc.__class__.__name__
            if kind == 'RecursionError' or (kind == 'ArgumentError' and 'RecursionError' in exc.args[0]):
                _lptrace_overflow_cleared()
        except an_exception:
            pass
    return False


def _lptrace_overflow_cleared():
    """3.6-3.8: clears the current thread's "overflowed" flag (a char at 36
    of its state), through ctypes if the hook has imported it already.
    Returns whether it could."""
    import sys
    ctypes = sys.modules.get('ctypes')
    if ctypes is None:
        return False
    try:
        ctypes.c_char.from_address(_lptrace_state_getter(ctypes)() + 36).value = b'\0'
        return True
    except Exception:
        return False


def _lptrace_state_getter(ctypes, made=[]):
    # PyThreadState_Get through ctypes, made once (our own handle: the
    # program's ctypes.pythonapi settings are its own).
    if not made:
        f = ctypes.PyDLL(None).PyThreadState_Get
        f.restype, f.argtypes = ctypes.c_void_p, []
        made.append(f)
    return made[0]


def _lptrace_main_ident():
    """The main thread's ident, the only thread where the program's signal
    handlers run, or None. Only if the program imported threading: importing
    it here would change the program (and, on 2.7, break its shutdown when
    done from a thread)."""
    import sys
    t = sys.modules.get('threading')
    if type(getattr(t, 'get_ident', None) or getattr(t, '_get_ident', None)) is not type(len):
        return None  # patched (gevent): its idents name greenlets, not threads (2.7: _get_ident)
    try:
        if hasattr(t, 'main_thread'):
            return t.main_thread().ident
        return t._shutdown.__self__.ident
    except Exception:
        return None


def _lptrace_sigint_sender(start_thread=None):
    """Returns send(main): gives the program back a Ctrl-C that lptrace's
    code caught in the main thread (whose ident is main). Never from the
    main thread itself, which would get it back at once, still inside our
    code: from the calling (other) thread, or, called from the main thread,
    from a new thread once the main thread has left our code (20 ms). A
    real SIGINT to the main thread when the program's handler is a Python
    function (lptrace, if it holds that thread right then, holds the
    signal until the thread is back in the program's code); otherwise
    interrupt_main()."""
    import time
    try:
        import _signal as signal
        import _thread as thread
    except ImportError:
        import signal
        import thread
    pthread_kill = getattr(signal, 'pthread_kill', None)
    # Bound now: it may run after the payload's globals (and with them the
    # builtins of older Pythons) are cleared. The interpreter's own thread
    # functions (see _lptrace_original; without them, no new thread).
    is_callable, error = callable, Exception
    start_new_thread, _, get_ident = _lptrace_thread_functions() or (None, None, None)
    start_thread = start_thread or start_new_thread
    sleep = _lptrace_original(time, 'sleep')

    def deliver(main, delay):
        if delay and sleep is not None:
            sleep(delay)
        try:
            if pthread_kill is not None and main is not None and is_callable(signal.getsignal(signal.SIGINT)):
                pthread_kill(main, signal.SIGINT)
                return
        except error:
            pass
        thread.interrupt_main()

    def send(main):
        if get_ident is None:
            thread.interrupt_main()
        elif main == get_ident():
            start_thread(deliver, (main, 0.02))
        else:
            deliver(main, 0)
    return send


def _lptrace_original(module, name):
    """The interpreter's own function NAME of MODULE (a module object),
    whatever the program patched, or None: gevent's monkey patching (and
    the like) replaces the thread, lock, sleep and poll functions with
    versions for greenlets on the main OS thread, where a "thread" of
    lptrace's would be a greenlet whose signal mask stays on the main
    thread, whose locks and sleeps switch greenlets, and get_ident names
    greenlets. gevent keeps the originals (gevent.monkey.saved, by module
    name)."""
    import sys
    f = getattr(module, name, None)
    builtin = type(len)
    if f is None or type(f) is builtin:
        return f
    saved = getattr(sys.modules.get('gevent.monkey'), 'saved', None)
    try:
        f = saved[module.__name__][name]
    except Exception:
        return None
    return f if type(f) is builtin else None


def _lptrace_thread_functions():
    """(start_new_thread, allocate_lock, get_ident) as the interpreter has
    them (see _lptrace_original), or None if the program replaced them
    with something lptrace does not know."""
    try:
        import _thread as thread
    except ImportError:
        import thread
    fs = tuple(_lptrace_original(thread, n) for n in ('start_new_thread', 'allocate_lock', 'get_ident'))
    return None if None in fs else fs


def _lptrace_thread_starter():
    """Returns start(f, args): _thread.start_new_thread(f, args), the new
    thread marked as tracing (tstate->tracing + 1, as lptrace marks the
    threads that run its payloads) before it runs any Python code. On
    3.12+ sys.monitoring tools see every thread: marked, ours shows to
    none of them. (Before 3.12 a thread started so has no trace or profile
    function: nothing to hide.) The mark is made in the new thread by C
    code only: ctypes functions of the C API, chained by C iterators, so
    that not even f's own start event shows. Without _ctypes, a plain
    thread."""
    import sys
    try:
        import _thread as thread_mod
    except ImportError:
        import thread as thread_mod
    plain = _lptrace_original(thread_mod, 'start_new_thread') or thread_mod.start_new_thread
    if sys.version_info < (3, 12):
        return plain
    if 't' in sys.abiflags and '_ctypes' not in sys.modules:
        # A free-threaded build: making ctypes' classes (a metaclass) beside
        # busy threads can take seconds there (see _lptrace_ctypes).
        return plain
    try:
        # C modules only (functools would import collections: milliseconds
        # in a program that has not).
        import _ctypes
        import _operator
        import itertools
        import _functools

        # Classes are immortal on a free-threaded 3.13: made once there
        # (see _lptrace_kept).
        types = _lptrace_kept().get('starter')
        if types is None:
            class Ptr(_ctypes._SimpleCData):
                _type_ = 'P'
            flags = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI  # called with the GIL held

            class Get(_ctypes.CFuncPtr):
                _flags_ = flags
                _restype_ = Ptr
                _argtypes_ = ()

            class Enter(_ctypes.CFuncPtr):
                _flags_ = flags
                _restype_ = None
                _argtypes_ = (Ptr,)
            types = Get, Enter
            _lptrace_keep('starter', types)
        Get, Enter = types
        lib = _ctypes.dlopen(None, 0)
        get = Get(_ctypes.dlsym(lib, 'PyThreadState_Get'))
        enter = Enter(_ctypes.dlsym(lib, 'PyThreadState_EnterTracing'))
        call, chain, partial, run = _operator.call, itertools.chain, _functools.partial, any
    except Exception:
        return plain

    def start(f, args):
        # any() pulls: enter(get()), then f(*args) (None: any goes on).
        return plain(run, (chain(map(enter, map(call, (get,))), map(call, (partial(f, *args),))),))
    return start


def _lptrace_kept():
    """What earlier sessions kept in sys.__lptrace_kept__ (see
    _lptrace_keep), or an empty dict."""
    import sys
    return sys.__dict__.get('__lptrace_kept__') or {}


def _lptrace_keep(key, obj):
    """Keeps obj in sys.__lptrace_kept__[key] if the interpreter made it
    (or, for a tuple, its first item) immortal: a free-threaded 3.13, once
    the program has started a thread, never frees a class, a function
    defined at a module's top level or a code object marshal built, nor
    what they hold. Such an object stays anyway: kept, the next session
    uses it instead of leaving one more."""
    import sys
    first = obj[0] if type(obj) is tuple else obj
    if sys.getrefcount(first) >= 1 << 30:
        sys.__dict__.setdefault('__lptrace_kept__', {})[key] = obj


def _lptrace_headroom_back(kept):
    """Lowers the recursion limit by the 100 frames a tracing session kept
    raised (see inject.Headroom and trace.py), unless the program set
    another meanwhile (kept: the limit once raised). From a thread deeper
    than the lowered limit (the hook leaves from wherever its pipe broke),
    through the C API, which does not check."""
    import sys
    if sys.getrecursionlimit() != kept:
        return
    to = kept - 100
    try:
        sys.setrecursionlimit(to)
    except Exception:
        try:
            import ctypes
            ctypes.PyDLL(None).Py_SetRecursionLimit(ctypes.c_int(to))
        except Exception:
            pass
