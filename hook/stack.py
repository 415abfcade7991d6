# lptrace's stack dump: the Python stack of every thread, from inside the
# target, with FIFO/FIFO_ID, LOCALS (bool), STRSIZE and VERBOSE in its
# globals. Our own frames (this payload, another session's payload or
# tracing hook running in a program's thread, the PyRun_SimpleString module
# under them) and threads (a tracing hook's timer thread) are left out.
#
# Records (kind byte, 4-byte little-endian length, data):
#   S  started: pid
#   T  a thread: "ident<TAB>native id (0: unknown before 3.8)<TAB>name<TAB>daemon (0/1)<TAB>main (0/1)"
#   F  a frame of the last thread, outermost first: "file<TAB>line<TAB>function"
#   L  a local of the last frame: "name<TAB>repr"
#   A  an asyncio task (TASKS): "name<TAB>state<TAB>what it awaits"
#   W  a frame of the last task's coroutines, outermost first: as F
#   E  the stacks could not be read: why (then X, no thread)
#   X  done


def _lptrace_ours(code):
    # lptrace's code (compiled as '<lptrace>'), or the PyRun_SimpleString
    # module that runs it (see hook.wrap; trace.py tells them apart alike).
    return code.co_filename == '<lptrace>' or (code.co_filename == '<string>' and '<lptrace>' in code.co_consts)


def _lptrace_stack(fifo, fifo_id, with_locals, strsize, verbose, with_tasks):
    import os
    import sys
    import struct
    fd = _lptrace_open_fifo(fifo, fifo_id)
    if fd < 0:
        return
    sigpipe = _lptrace_sigpipe_guard()
    srepr = _lptrace_repr(strsize, verbose)
    out = []

    def field(x):
        # Tabs separate the fields: a name with one must not shift them.
        return x.replace('\t', '\\t') if isinstance(x, str) else x

    def rec(kind, text):
        if not isinstance(text, bytes):
            text = text.encode('utf-8', 'replace')
        out.append(kind + struct.pack('<I', len(text)) + text)

    rec(b'S', str(os.getpid()))
    frame = f = stack = None
    try:
        import _thread as thread_mod
    except ImportError:
        import thread as thread_mod
    me = (_lptrace_original(thread_mod, 'get_ident') or thread_mod.get_ident)()
    threading = sys.modules.get('threading')
    active = getattr(threading, '_active', {}) if threading else {}
    main = None
    for t in list(active.values()):
        if type(t).__name__ == '_MainThread':
            main = t.ident
    natives = {}
    try:
        frames = _lptrace_interpreter_frames(natives)
    except Exception as e:
        rec(b'E', str(e))
        frames, with_tasks = {}, False
    if frames is None:
        frames = sys._current_frames()
    if threading is None and len(frames) == 1:
        main = list(frames)[0]  # (threading never imported: one thread, the main one)
    for ident, frame in sorted(frames.items()):
        stack = []
        f = frame
        while f is not None:
            stack.append(f)
            f = f.f_back
        stack.reverse()  # outermost first
        # lptrace's code on top of a program's thread: this payload, another
        # session's (its install, an exec) or a tracing hook's callback
        # (caught while it writes its events, the GIL released). The
        # thread is the program's: its frames below ours are shown, as if
        # lptrace were not there. A thread whose outermost frame is ours
        # is lptrace's own (a hook's timer thread): left out.
        for i, f in enumerate(stack):
            if _lptrace_ours(f.f_code):
                if i == 0 and f.f_code.co_filename == '<lptrace>':
                    stack = None
                else:
                    stack = stack[:i]
                break
        if stack is None:
            continue
        if not stack and ident != me:
            continue  # no frame of the program (nor listed without lptrace)
        t = active.get(ident)
        name, daemon, native = 'MainThread' if ident == main else '', 0, natives.get(ident, 0)
        if t is not None:
            try:
                name = t.name
                daemon = int(bool(t.daemon))
                native = getattr(t, 'native_id', None) or native  # 3.8+
            except Exception:
                pass
        if ident == me and not native and hasattr(thread_mod, 'get_native_id'):
            native = thread_mod.get_native_id()
        if ident == main and not native:
            native = os.getpid()
        rec(b'T', '%d\t%d\t%s\t%d\t%d' % (ident, native, field(name), daemon, int(ident == main)))
        for f in stack:
            code = f.f_code
            rec(b'F', '%s\t%d\t%s' % (field(code.co_filename), f.f_lineno, field(getattr(code, 'co_qualname', code.co_name))))
            if with_locals and code.co_name != '<module>':  # a module's "locals" are its globals
                try:
                    items = sorted(f.f_locals.items())
                except Exception:
                    items = []
                for k, v in items:
                    rec(b'L', '%s\t%s' % (field(k), srepr(v)))
    del frame, f, stack
    if with_tasks:
        for name, state, waits, frames in _lptrace_tasks(srepr):
            rec(b'A', '%s\t%s\t%s' % (field(name), state, field(waits)))
            for fn, line, qual in frames:
                rec(b'W', '%s\t%d\t%s' % (field(fn), line, field(qual)))
    rec(b'X', '')
    data = b''.join(out)
    try:
        import errno
        import select
        import time
        deadline = time.time() + 10
        while data and time.time() < deadline:
            try:
                n = sigpipe(os.write, fd, data)
                data = data[n:]
            except OSError as e:
                # Only a full pipe is worth waiting for (lptrace reads
                # slowly); anything else means lptrace is gone.
                if e.errno != errno.EAGAIN:
                    break
                (_lptrace_original(select, 'select') or select.select)([], [fd], [], 1)
    finally:
        os.close(fd)


def _lptrace_interpreter_frames(natives):
    """{thread ident: innermost frame} of this interpreter's threads, on
    3.12 and 3.13; None elsewhere (then sys._current_frames() serves). There
    sys._current_frames() makes frame objects for the threads of every
    interpreter with this one's allocator, while isolated subinterpreters
    run on under their own GIL: the program aborts (free(): invalid
    pointer). The walk here stays in this interpreter, whose thread states
    change only with its GIL held, as it is now. natives gets each thread's
    native ID."""
    import sys
    if not (3, 12) <= sys.version_info[:2] < (3, 14):
        return None
    ctypes = _lptrace_ctypes()
    if ctypes is None:
        if any(m in sys.modules for m in ('_interpreters', '_xxsubinterpreters', 'interpreters')):
            raise RuntimeError('the stacks of a program that runs subinterpreters can only be read with ctypes, which this Python lacks '
                               '(or, free-threaded, has not imported: the import can hang it)')
        return None
    try:
        from _thread import get_ident, get_native_id
    except ImportError:
        return None
    api = ctypes.PyDLL(None)  # our own handle: ctypes.pythonapi's settings are the program's
    vp = ctypes.c_void_p
    fns = {}
    for name, argtypes in (('PyThreadState_Get', []), ('PyInterpreterState_Get', []), ('PyInterpreterState_ThreadHead', [vp]),
                           ('PyThreadState_Next', [vp]), ('PyThreadState_GetFrame', [vp]), ('Py_DecRef', [vp])):
        f = getattr(api, name)
        f.argtypes, f.restype = argtypes, vp
        fns[name] = f
    # Where a thread state keeps its thread's ident and native ID (two words
    # side by side): found in this thread's own.
    words = (ctypes.c_ulong * 64).from_address(fns['PyThreadState_Get']())
    me = (get_ident(), get_native_id())
    at = [i for i in range(63) if (words[i], words[i + 1]) == me]
    if len(at) != 1:
        return None
    at = at[0] * 8
    frames = {}
    ts = fns['PyInterpreterState_ThreadHead'](fns['PyInterpreterState_Get']())
    while ts:
        ident = ctypes.c_ulong.from_address(ts + at).value
        natives[ident] = ctypes.c_ulong.from_address(ts + at + 8).value
        p = fns['PyThreadState_GetFrame'](ts)  # a new reference, or NULL
        if p:
            frames[ident] = ctypes.cast(p, ctypes.py_object).value
            fns['Py_DecRef'](p)  # (the one above holds it now)
        ts = fns['PyThreadState_Next'](ts)
    return frames


def _lptrace_tasks(srepr):
    """The program's asyncio tasks not done: [(name, state, what it awaits,
    [(file, line, function) of its coroutines, outermost first])]. From
    asyncio's registry of tasks (3.7-3.13), else (3.14+ keeps C tasks in
    lists of its own) the objects the collector tracks. Attributes are
    read through asyncio's own types, never a subclass's: no code of the
    program runs."""
    import sys
    tasks_mod = sys.modules.get('asyncio.tasks')
    futures_mod = sys.modules.get('asyncio.futures')
    if tasks_mod is None or futures_mod is None:
        return []
    bases = tuple(set(t for t in (getattr(tasks_mod, 'Task', None), getattr(tasks_mod, '_PyTask', None),
                                  getattr(tasks_mod, '_CTask', None)) if isinstance(t, type)))
    if not bases:
        return []
    import types
    walkable = (types.CoroutineType, types.GeneratorType, getattr(types, 'AsyncGeneratorType', types.GeneratorType))
    attr = object.__getattribute__  # (not a subclass's __getattribute__)
    found = []
    if sys.version_info < (3, 14):
        for reg in ('_all_tasks', '_scheduled_tasks', '_eager_tasks'):
            r = getattr(tasks_mod, reg, None)
            if r is not None:
                found.extend(list(r))
    else:
        # (3.14+ keeps C tasks in lists of its own, out of Python's reach)
        import gc
        found = [o for o in gc.get_objects() if issubclass(type(o), bases)]
    def task_name(t):
        base = [b for b in bases if issubclass(type(t), b)][0]
        return base.get_name(t) if hasattr(base, 'get_name') else 'Task at 0x%x' % id(t)  # (3.7: no names)

    seen, out = set(), []
    for task in found:
        if id(task) in seen or not issubclass(type(task), bases):
            continue
        seen.add(id(task))
        base = [b for b in bases if issubclass(type(task), b)][0]
        try:
            if base.done(task):
                continue
            name = task_name(task)
            waiter = attr(task, '_fut_waiter')
            waits = ''
            if waiter is not None:
                if issubclass(type(waiter), bases):
                    waits = task_name(waiter)
                else:
                    try:
                        children = attr(waiter, '_children')  # gather()'s
                    except AttributeError:
                        children = None
                    if type(children) is list and all(issubclass(type(c), bases) for c in children):
                        waits = 'gather(%s)' % ', '.join(task_name(c) for c in children)
                    else:
                        waits = srepr(waiter)
            frames = []
            coro = base.get_coro(task) if hasattr(base, 'get_coro') else attr(task, '_coro')  # (3.7)
            depth = 0
            # Down the chain of coroutines (and generators) it awaits;
            # anything else (a future, the program's awaitable) ends it.
            while type(coro) in walkable and depth < 100:
                f = getattr(coro, 'cr_frame', None) or getattr(coro, 'gi_frame', None) or getattr(coro, 'ag_frame', None)
                if f is not None:
                    code = f.f_code
                    frames.append((code.co_filename, f.f_lineno, getattr(code, 'co_qualname', code.co_name)))
                coro = getattr(coro, 'cr_await', None) or getattr(coro, 'gi_yieldfrom', None)
                depth += 1
            out.append((name, 'pending', waits, frames))
        except Exception:
            if _lptrace_raised_by_program():
                raise
    return out


_lptrace_stack(FIFO, FIFO_ID, LOCALS == '1', int(STRSIZE), VERBOSE == '1', TASKS == '1')
