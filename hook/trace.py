# lptrace's tracing hook. It runs inside the target, installed once with
# SESSION, FIFO, FIFO_ID and CONFIG (a dict) in its globals; per-thread
# installation (Python < 3.12) calls the installer it leaves in
# sys.__lptrace__[SESSION] in each thread that existed before (see
# hook.TraceThread). Python 2.7 and 3.6+. It must never raise into the program,
# never block it, and remove itself when lptrace goes away (the pipe breaks).
#
# Records (kind byte, 4-byte little-endian length, data):
#   S  started: "pid<TAB>ppid<TAB>clock ns<TAB>wall ns<TAB>sys.version<TAB>how"
#      how: "precompiled" or "compiled" (load.py)
#   C  a function seen for the first time: "id<TAB>qualname<TAB>file<TAB>line<TAB>module"
#   T  a thread seen for the first time: "index<TAB>native id<TAB>name"
#   V  a value (arguments, return value, exception): "id<TAB>text"
#   B  a batch of events, each STRIDE little-endian uint64 words:
#        kind << 56 | thread index << 32 | function id
#        [clock ns]            when CONFIG asks for times
#        [value id + 1, or 0]  when CONFIG asks for values
#      kind: 0 call, 1 return, 2 return by exception, 4 a generator or
#      coroutine resumed, 5 one suspended (by yield or await); 3 is lptrace's
#   D  events dropped because the pipe was full: count
#   P  (following forks only) the pid the records up to the next P are from;
#      each write then is one P record and whole records, at most PIPE_BUF
#      bytes, so that processes sharing the pipe never interleave.
#   H  (before 3.12) the profile function of the threads that existed is
#      set: "all", or "some" (lptrace hooks the others where they park)
#   R  instead of S: the hook refused to start, and why
#
# The install (_lptrace_install) makes the session's state, then the hook's
# parts, each a function that takes that state and the functions of the
# parts made before it by name (its parameters, given from hook, the dict
# of them all) and returns its own functions by name: _lptrace_writer,
# _lptrace_flusher, ... to _lptrace_ticker; then _lptrace_switch_on puts
# the hook in place. A part's functions are
# closures over the names it takes, reached as fast as any local of an
# enclosing function: the callbacks that run at every call (on_call,
# on_return, the profiler, sys.monitoring's) look nothing up in hook or in
# an object. A function that needs one of a part made after its own (the
# session's end, a forked child: never where an event waits) finds it in
# hook when it runs.


def _lptrace_install(session, fifo, fifo_id, cfg, undo):
    import os
    import sys
    import errno
    import time
    import itertools
    import atexit
    # The interpreter's own thread, lock and sleep functions, not a green-
    # thread library's (gevent's monkey patching): see _lptrace_original.
    real = _lptrace_thread_functions()
    start_thread, new_lock, get_ident = real or (None, None, None)
    base_exception = BaseException  # for code that may run after the payload's globals are cleared (2.7)
    # Likewise for the callbacks: a profile function of an ended session
    # runs on in its threads until its next event, and the payload's
    # globals, builtins included, are cleared when a session ends.
    keyboard_interrupt = KeyboardInterrupt
    an_exception = Exception
    get_attr = getattr
    is_callable = callable
    obj_getattr = object.__getattribute__
    # Bound: 2.7's module cleanup at exit empties modules.
    sleep = _lptrace_original(time, 'sleep') or (lambda s: None)
    # lptrace raises the recursion limit by 100 around this install (see
    # inject.Headroom); the session keeps that much more while it lives:
    # its callbacks run at the program's depth, and their frames count.
    # limit: the value the session set (see _lptrace_headroom_back).
    limit, headroom_back = [None], _lptrace_headroom_back

    if session in sys.__dict__.get('__lptrace__', ()):
        return
    # The path stays until the hook is in place: an install interrupted by
    # the program's signal handler leaves the FIFO unwritten (its change
    # time, which the identity check compares, unchanged), and lptrace sends
    # the install again.
    fd = _lptrace_open_fifo(fifo, fifo_id, keep=True, sink=undo)
    if fd < 0:
        return  # lptrace is gone: leave no trace, not even the registry
    if real is None:
        # Refused, and lptrace told why (an R record), rather than start a
        # "thread" that is not one.
        try:
            why = 'the program replaced the interpreter\'s thread functions (a green-thread library other than gevent)'
            import struct
            os.write(fd, b'R' + struct.pack('<I', len(why)) + why.encode())
        finally:
            os.close(undo.pop('fd'))
            _lptrace_remove_fifo(fifo)
        return
    registry = sys.__dict__.setdefault('__lptrace__', {})
    if session in registry:
        # An earlier install of this session (a pending call that lptrace
        # gave up waiting for) ran meanwhile.
        os.close(undo.pop('fd'))
        return
    registry[session] = None  # claimed: a later copy stops above
    undo['claimed'] = True

    want_returns = bool(cfg.get('returns'))
    want_times = bool(cfg.get('times'))
    want_args = bool(cfg.get('args'))
    want_stack = bool(cfg.get('stack'))  # -k: each call's callers
    want_values = want_args or want_stack or bool(cfg.get('retvals'))
    want_ret_values = bool(cfg.get('retvals'))
    follow = bool(cfg.get('follow'))
    strsize = int(cfg.get('strsize') or 32)
    verbose = bool(cfg.get('verbose'))
    wanted = None
    if cfg.get('filters') or cfg.get('nostdlib'):
        wanted = _lptrace_filter(cfg.get('filters') or [], bool(cfg.get('nostdlib')))
    clock = getattr(time, 'perf_counter_ns', None)
    if clock is None:
        _pc = getattr(time, 'perf_counter', time.time)
        clock = lambda: int(_pc() * 1e9)
    srepr = _lptrace_repr(strsize, verbose) if want_values else None
    PIPE_BUF = 4096

    # live: the install is complete; until then nothing is written (the
    # start record must come first, and it is queued last).
    st = {'on': True, 'live': False, 'fd': fd, 'pid': os.getpid(), 'dropped': 0, 'tail': b'', 'taken': 2048, 'ok': 0,
          'lock': new_lock()}
    codes = {}  # id(code) -> (function id or -1 if filtered out, code); the code is kept alive
    threads = {}  # thread ident -> thread index
    counters = {'code': itertools.count(), 'thread': itertools.count(), 'value': itertools.count()}
    # One append (or one extend of a tuple) per event: atomic under the GIL,
    # so threads never interleave their words. A free-threaded build runs
    # callbacks at the same time: there the queue is a list, whose append,
    # extend, slice and del each hold the list's own lock (an array's do
    # not: concurrent appends corrupt it); the ring's writers take a lock
    # (_lptrace_locked_ring_writers); the tables are dicts, the ids come
    # from itertools.count, both thread-safe there (docs/design.md).
    # (Nor is array imported there: its import registers it with
    # collections.abc, which beside busy threads held the program's main
    # thread for most of a second.)
    free_threaded = 't' in getattr(sys, 'abiflags', '') or not getattr(sys, '_is_gil_enabled', lambda: True)()
    array = None
    if free_threaded:
        events = []
    else:
        from array import array
        events = array('L')
    meta = []  # pending C/T/V records, sent before the next batch
    if hasattr(0, 'to_bytes'):
        # 3.x: record lengths without struct (a module to load, 0.2-0.4 ms
        # of a process's first attach with the GIL held).
        def u32(n):
            return n.to_bytes(4, 'little')
    else:
        import struct
        u32 = struct.Struct('<I').pack
    sigpipe = _lptrace_sigpipe_guard()
    stride = 1 + want_times + want_values

    # The ring shared with lptrace (native.py): records and events go there
    # as they are made, so that what the program did before it died is
    # lptrace's to read. Without it (lptrace could not make the file, or
    # no writers before 3.12 on this machine), the pipe carries them, in
    # batches of the timer thread's.
    # ring[0]: what _lptrace_ring returned, or None; wr: its writers
    # (record a word, two, three; put a record).
    ring = [None]
    nslots = [0]
    _lptrace_session_ring(cfg, stride, ring, nslots, an_exception)
    if ring[0] is not None:
        wr = list(ring[0][3])
    else:
        wr = [events.append, lambda w, x: events.extend((w, x)), lambda w, x, y: events.extend((w, x, y)), None]
    KICK = b'K\0\0\0\0'  # to lptrace: read the ring
    st['kicked'] = (0, 0)
    # Slots of the ring for the children this process forks (-f), while
    # there are: handed out before the fork (see before_fork).
    next_slot = [1]

    # Our threads (the timer) are invisible to the program's tools too.
    start_thread = _lptrace_thread_starter()
    # Thread IDs (pthread_self) are reused: a thread that starts with the ID
    # of one that ended gets a definition of its own, with its own native ID
    # and name. Known at Thread._bootstrap's call (3.12+; its code is in
    # starts) or at the thread's first event (before: thread_start).
    starts = set()
    fast = stride == 1  # calls (and returns) only: one word per event
    # The machine-code callback records calls, returns and their times;
    # values only the Python callback can make. With -c alone it keeps the
    # table itself (native.py): lptrace reads the counts, not every event.
    native_ok = bool(cfg.get('native')) and not free_threaded
    aggregate = native_ok and want_returns and want_times and bool(cfg.get('aggregate'))
    # Events per batch: past it the main thread wakes the timer thread
    # (each wake-up costs the program a GIL hand-over; full() returns at
    # once while one is pending). Small batches: with 16384 the program
    # kept megabytes more after lptrace left (the C library's caches).
    # LIMIT caps the queue if the timer thread never gets the GIL.
    BATCH = 512
    LIMIT = 1 << 20
    # Words taken from the machine-code callback's ring per flush (the
    # timer thread takes up to 16 a turn while the pipe has room): 64 KiB
    # buffers, which the C library reuses; megabyte ones it kept.
    NATIVE_CHUNK = 8192
    getframe = sys._getframe
    qualify = _lptrace_qualifier() if sys.version_info < (3, 11) else None
    # Bound here: the payload's globals are cleared when the hook leaves,
    # and a callback may still be running then.
    # (Re-raising a RecursionError, see _lptrace_raised_by_program, makes
    # the interpreter remove the hook from that thread; lptrace puts it
    # back in the main thread.)
    raised_by_program = _lptrace_raised_by_program

    # The latest call's (code, thread ident, event word), calls only: a
    # loop that calls one function, or a recursion, then costs an identity
    # test and an append (see on_start). One tuple, replaced whole:
    # another thread may replace it between any two instructions.
    last = [(None, None, 0)]
    # The machine-code callback's (function, put, record, take, commit) when
    # in use (see native.py): the events then go to its ring, not `events`.
    nat = [None]
    later_native = [False]  # go_native() is due
    later_all = [False]  # hook_all_threads() is due
    switched = set()  # before 3.12: threads that took it (switch_native)
    # The first event goes out at once: written by the thread that makes
    # it, or the timer thread is woken without waiting for its turn (it
    # still needs the GIL from a busy main thread: a switch interval).
    first = [False]

    payload_globals = globals()

    monitoring = getattr(sys, 'monitoring', None)
    tool = [None]
    prev_thread_hook = [None]  # the program's threading.setprofile() function
    watched = []
    ticker_ident = [None]
    forking = [False]  # between before_fork and the fork's end in each process
    child_slot = [None]  # the ring's slot handed to the child being forked
    try:
        import posix
        forks_c = (getattr(posix, 'fork', 0), getattr(posix, 'forkpty', 0))
    except an_exception:
        forks_c = (0, 0)
    # Before 3.12 the profile function sees a generator's or coroutine's
    # resumption as a call and its suspension as a return: the instruction
    # its frame stands at tells them apart (3.12+ has events of their own).
    gen_flags = 0 if monitoring is not None else 0x20 if sys.version_info[0] == 2 else 0x3a0
    # The program's own profile functions (a profiler it runs): called on
    # from ours, and put back when we leave. Per thread.
    prev_profiles = {}
    # Threads the program starts later get the profile function through
    # threading's hook; if the program has not imported threading yet
    # (launch mode: the hook comes before its first line), the hook is set
    # once it has (checked at each new function).
    thread_watch = [False]

    # The session: every name above (none may hold what the session lets go
    # at its end: see _lptrace_session_ring), then the parts' functions.
    hook = dict(locals())
    hook['hook'] = hook
    try:
        for part in (_lptrace_writer, _lptrace_flusher, _lptrace_threads, _lptrace_wakeup, _lptrace_definitions,
                     _lptrace_lifecycle, _lptrace_callbacks, _lptrace_profiler, _lptrace_thread_profiles,
                     _lptrace_monitoring, _lptrace_native_switch, _lptrace_ticker):
            # (each given its parameters by name: hook passed as **hook
            # cost 40-50 us a part, sorting out a hundred keyword arguments)
            code = part.__code__
            hook.update(part(*[hook[name] for name in code.co_varnames[:code.co_argcount]]))
    except base_exception:
        # (a signal handler of the program raised: the undo follows) The
        # parts made refer to hook, which refers to them: emptied, so that
        # the ring is unmapped now, not at the next garbage collection.
        hook.clear()
        raise
    undo['uninstall'] = hook['uninstall']
    code = _lptrace_switch_on.__code__
    _lptrace_switch_on(*[hook[name] for name in code.co_varnames[:code.co_argcount]])


def _lptrace_session_ring(cfg, stride, ring, nslots, an_exception):
    # Maps the ring of CONFIG into ring[0] and its number of slots into
    # nslots[0] (see _lptrace_install), in a function of its own: the
    # install's own names all become the session's (hook), and nothing there
    # may hold the mapping but ring[0], which the end of the session empties
    # (unmapped then).
    if cfg.get('ring'):
        try:
            path, ident, nslots[0] = cfg['ring']
            mm = _lptrace_open_ring(path, ident, nslots[0], 0)
            if mm is not None:
                r = _lptrace_ring(mm, 0, stride)
                w = r[3] or _lptrace_machine_writers(r)
                if w is not None:
                    r[3] = w
                    ring[0] = r
        except an_exception:
            ring[0] = None


def _lptrace_writer(st, os, errno, sigpipe, meta, wr, u32, PIPE_BUF, stride, an_exception, clock, time, sys, hook):
    # The records and their way out: define (into the ring, else queued
    # for the pipe), write and write_atomic (the pipe), record, the start
    # record, and whether lptrace is gone (reader_gone).

    def define(rec):
        # A definition (C, T, V): into the ring, else queued for the pipe.
        # False: the ring's records are full (lptrace reads too slowly);
        # the event that needed it is dropped.
        put = wr[3]
        if put is None:
            meta.append(rec)
            return True
        return put(rec)

    def write(data):
        # Non-blocking: a full pipe drops (the caller counts), a partial
        # write keeps the tail so records stay aligned, anything else means
        # lptrace is gone. New data goes only once an earlier tail is out:
        # a slow reader costs dropped events, never memory.
        try:
            if st['tail']:
                n = sigpipe(os.write, st['fd'], st['tail'])
                st['tail'] = st['tail'][n:]
                if st['tail']:
                    return False
            n = sigpipe(os.write, st['fd'], data)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return False
            hook['uninstall']()
            return False
        st['tail'] = data[n:]
        return True

    def write_atomic(data):
        # Following forks: writes of at most PIPE_BUF bytes are atomic, all
        # or nothing (EAGAIN), so no partial write ever needs finishing.
        try:
            sigpipe(os.write, st['fd'], data)
            return True
        except OSError as e:
            if e.errno != errno.EAGAIN:
                hook['uninstall']()
            return False

    select_mod = []

    def reader_gone():
        # Only the timer thread asks, after its first flush: select is
        # imported there, not in the install (an extension module to load,
        # 0.5 ms of the target's first attach with the GIL held).
        try:
            if not select_mod:
                import select
                select_mod.append(select)
                select_mod.append(_lptrace_original(select, 'poll'))
            select, poll = select_mod
            p = poll()
            p.register(st['fd'], select.POLLOUT)
            for _, ev in p.poll(0):
                if ev & (select.POLLERR | select.POLLHUP):
                    return True
        except an_exception:
            pass
        return False

    def record(kind, payload):
        if not isinstance(payload, bytes):
            payload = payload.encode('utf-8', 'replace')
        return kind + u32(len(payload)) + payload


    def flush_framed(m, raw):
        head = record(b'P', str(st['pid']))
        room = PIPE_BUF - len(head)
        size = 8 * stride
        sent = 0
        while sent < len(m):
            out = head
            n = sent
            while n < len(m) and len(out) + len(m[n]) <= PIPE_BUF:
                out += m[n]
                n += 1
            if n == sent:  # a definition too long to frame: cut its text
                r = m[n]
                out += r[:1] + u32(room - 5) + r[5:room]
                n += 1
            if not write_atomic(out):
                meta[0:0] = [r for r in m[sent:] if r[:1] != b'V']  # definitions must not be lost
                st['dropped'] += len(raw) // size
                return 0
            sent = n
        per = (room - 64) // size * size  # whole events, and room for a D record
        for i in range(0, len(raw), per):
            out = head
            if st['dropped']:
                out += record(b'D', str(st['dropped']))
            if not write_atomic(out + record(b'B', raw[i:i + per])):
                st['dropped'] += (len(raw) - i) // size
                return 0
            st['dropped'] = 0
        if st['dropped'] and write_atomic(head + record(b'D', str(st['dropped']))):
            st['dropped'] = 0
        return 1

    def started():
        return record(b'S', '%d\t%d\t%d\t%d\t%s\t%s' % (os.getpid(), os.getppid(), clock(), int(time.time() * 1e9),
                                                      sys.version.split('\n')[0].replace('\t', ' '), LOADED))
    return dict(define=define, write=write, write_atomic=write_atomic, reader_gone=reader_gone, record=record,
                flush_framed=flush_framed, started=started)


def _lptrace_flusher(os, st, sleep, ring, meta, KICK, stride, follow, write_atomic, record, write, nat, NATIVE_CHUNK,
                     events, flush_framed, u32, array, time, free_threaded, hook):
    # flush: what is queued (records, events), or a kick for lptrace to
    # read the ring; drain, and the last flush at exit.

    def flush(wait=0):
        # One writer at a time (os.write releases the GIL: two writers would
        # interleave records); a thread that finds it busy leaves its events
        # queued for the next flush, unless it waits (at exit: there is no
        # next flush).
        if os.getpid() != st['pid']:
            # A forked child, before the lock: the timer thread may have
            # held it at the fork, and no thread of the child will release it.
            hook['in_child']()
            return
        lock = st['lock']
        if not st['on'] or not st['live']:
            return
        ev = m = mark = None
        early = 0
        # (the acquire right before the try: the fewest instructions where
        # a signal handler of the program that raises would leave it held)
        if not lock.acquire(False):
            for _ in range(wait):
                sleep(0.01)
                if lock.acquire(False):
                    break
            else:
                return
        try:
            r = ring[0]
            if r is not None:
                # Everything is in the ring, which lptrace reads: the pipe
                # takes what was queued for it (the start record) and a
                # kick when there is something new, so that lptrace reads
                # it now rather than at its next look.
                m = meta[:]
                del meta[:len(m)]
                heads = (r[1][0], r[1][3])
                new = heads != st['kicked']
                st['taken'] = (heads[0] - st['kicked'][0]) // stride  # (the timer's pace)
                out = b''.join(m) + (KICK if new else b'')
                st['ok'] = 1
                if out or st['tail']:
                    if follow:
                        st['ok'] = write_atomic(record(b'P', str(st['pid'])) + out)
                    else:
                        st['ok'] = int(write(out) and not st['tail'])
                    if not st['ok']:
                        meta[0:0] = m  # (the start record must not be lost)
                        return
                st['kicked'] = heads
                m = None
                return
            # Take what is queued now; other threads may append meanwhile
            # (each step below is one bytecode, atomic under the GIL).
            # Events first: the definitions an event needs were queued
            # before it, so the meta taken next includes them.
            n = nat[0]
            if n is not None:
                # Left in the ring until written: a full pipe keeps them
                # there, and the ring drops (and counts) what does not fit.
                raw, lost, mark = n[3](NATIVE_CHUNK)
                st['dropped'] += lost
                ev = len(raw) // 8
                if events:
                    # Queued by the Python callback before the machine-code
                    # one took over (go_native): older, so first.
                    old = events.tobytes() if hasattr(events, 'tobytes') else events.tostring()
                    early = len(old) // events.itemsize
                    del events[:early]
                    raw = old + raw
                    ev += early
            elif free_threaded:
                # A list (see _lptrace_install): its words now, then that
                # many off its front (others append at its end meanwhile).
                taken = events[:]
                ev = len(taken)
                del events[:ev]
                raw = b''.join([w.to_bytes(8, 'little') for w in taken])
                taken = None
            else:
                # No copy of the array: its bytes, then that many words off
                # its front.
                raw = events.tobytes() if hasattr(events, 'tobytes') else events.tostring()
                ev = len(raw) // events.itemsize
                del events[:ev]
            st['taken'] = ev
            m = meta[:]
            del meta[:len(m)]
            if follow:
                st['ok'] = flush_framed(m, raw)
                m = None
                return
            parts = m[:]
            if st['dropped']:
                parts.append(record(b'D', str(st['dropped'])))
            if raw:
                parts += [b'B' + u32(len(raw)), raw]
            out = b''.join(parts)  # the one copy of the events
            st['ok'] = 1
            if not out and not st['tail']:
                return
            st['ok'] = 0
            # (b'' still sends the tail of an earlier partial write.)
            if write(out):
                early = 0
                st['dropped'] = 0
                st['ok'] = not st['tail']
                if mark is not None:
                    n[4](mark)
            else:
                # Definitions must not be lost; the values were for the
                # events now dropped (at exit, they wait for another try).
                meta[0:0] = [r for r in m if r[:1] != b'V']
                if mark is None and wait and raw and free_threaded:
                    events[0:0] = [int.from_bytes(raw[i:i + 8], 'little') for i in range(0, len(raw), 8)]
                elif mark is None and wait and raw:
                    back = array(events.typecode)
                    if hasattr(back, 'frombytes'):
                        back.frombytes(raw)
                    else:
                        back.fromstring(raw)
                    events[0:0] = back
                elif mark is None:
                    st['dropped'] += ev // stride
                else:
                    st['dropped'] += early  # the ring keeps its own
            m = None
        except BaseException:
            # A signal handler of the program raised in here (the main
            # thread flushes only at install and at exit): the definitions
            # taken go back, a later event may need them. Sent already,
            # they arrive twice, which the reader allows.
            if m is not None:
                meta[0:0] = [r for r in m if r[:1] != b'V']
                if mark is None:
                    st['dropped'] += ev // stride
                else:
                    st['dropped'] += early  # (the ring keeps its own)
            raise
        finally:
            lock.release()

    def drain(turns):
        # More flushes while the machine-code callback's ring holds more
        # than one takes (NATIVE_CHUNK words each) and the pipe has room.
        # No builtin name (see ticker()).
        k = 0
        while k < turns and st['taken'] == NATIVE_CHUNK and st['ok'] and nat[0] is not None and ring[0] is None:
            flush()
            k += 1

    def flush_at_exit():
        # The last events of a program that exits (the timer thread dies
        # with it): all of them, waiting for the timer thread's write and
        # for room in the pipe while lptrace reads on, 1 s at most in all.
        # A signal handler of the program that raises meanwhile (its
        # Ctrl-C) ends the wait, quietly: the program is leaving anyway.
        try:
            if ring[0] is not None:
                flush(10)  # (all is in the ring: only a kick)
                return
            now = getattr(time, 'monotonic', time.time)
            end = now() + 1
            flush(100)
            while st['on'] and now() < end:
                if st['ok']:
                    if nat[0] is None or st['taken'] < NATIVE_CHUNK:
                        break
                else:
                    sleep(0.005)  # the pipe is full
                flush(10)
        except BaseException:
            pass
    return dict(flush=flush, drain=drain, flush_at_exit=flush_at_exit)


def _lptrace_threads(get_ident, st, an_exception, start_thread, threads, last, nat, obj_getattr, counters, sys,
                     raised_by_program, define, record, os):
    # The thread registry: each thread's index and definition (T), the
    # main thread, and the Ctrl-C handed back to it.

    # The main thread: known from threading if the program imported it,
    # else found by its native ID (the process ID), else learnt from a
    # KeyboardInterrupt (raised there only).
    main_ident = [_lptrace_main_ident()]
    hand_back = _lptrace_sigint_sender(start_thread)

    def hand_back_sigint():
        hand_back(main_ident[0])

    def in_main():
        ident = get_ident()
        if ident == main_ident[0]:
            return True
        if main_ident[0] is None and native_id[0] is not None:
            try:
                if native_id[0]() == st['pid']:
                    main_ident[0] = ident
                    return True
            except an_exception:
                pass
        return False

    def renew_thread(name=None):
        # NAME: the thread's, when it is not in threading._active yet.
        ident = get_ident()
        if threads.pop(ident, None) is not None or name is not None:
            last[0] = (None, None, 0)
            t = thread_index(name)
            n = nat[0]
            if n is not None:
                n[1](1, ident, t << 32)  # (replaces a dead thread's)

    def starting_name(frame):
        # The name of the Thread whose _bootstrap this frame runs (3.12+),
        # read without running the program's code.
        try:
            name = obj_getattr(frame.f_locals['self'], '__dict__').get('_name')
            return name if isinstance(name, str) else None
        except an_exception:
            return None

    def thread_index(name=None):
        ident = get_ident()
        i = threads.get(ident)
        if i is None:
            i = next(counters['thread'])  # next() is atomic
            native = native_id[0]
            t = sys.modules.get('threading')
            if name is None and t is not None:
                try:
                    name = t._active[ident].name
                except an_exception:
                    if raised_by_program():
                        raise
            # The definition is queued before the index is published: a
            # signal handler of the program that raises in between (its
            # Ctrl-C) costs a second definition, never an event that
            # refers to none.
            define(record(b'T', '%d\t%s\t%s' % (i, native() if native else ident, (name or '')[:200])))
            threads[ident] = i
        return i

    # Before 3.8 Python has no native thread ID: ask the kernel through
    # ctypes (gettid: 186 on x86-64, 178 on arm64), else show the pthread
    # handle. Imported now, not in a callback: an import there could
    # deadlock on 2.7's global import lock.
    try:
        import _thread as thread_mod
    except ImportError:
        import thread as thread_mod
    native_id = [getattr(thread_mod, 'get_native_id', None)]
    if native_id[0] is None:
        try:
            nr = {'x86_64': 186, 'aarch64': 178}.get(os.uname()[4])
            if nr:
                import ctypes
                syscall = ctypes.CDLL(None).syscall
                native_id[0] = lambda: syscall(nr)
        except an_exception:
            pass
    return dict(main_ident=main_ident, hand_back_sigint=hand_back_sigint, in_main=in_main, native_id=native_id,
                renew_thread=renew_thread, starting_name=starting_name, thread_index=thread_index)


def _lptrace_wakeup(new_lock, sys, events, LIMIT, stride, st, in_main, flush, first, main_ident, get_ident, an_exception):
    # Waking the timer thread: a full batch, the first events (and the
    # switch interval hurried for them), a Ctrl-C caught.
    # A batch full in the main thread is written by the timer thread: the
    # program's signal handlers run in the main thread only, and one that
    # raises (its Ctrl-C, its alarm) in the middle of a write would lose
    # what was taken, or misalign the stream. Other threads write it
    # themselves. Python 2.7 has no lock timeout: its timer just ticks.
    wake = new_lock()
    wake.acquire()  # locked: no wake-up pending
    timed_wait = sys.version_info[0] >= 3

    def wake_ticker():
        if timed_wait and wake.locked():
            wake.release()  # only this thread releases it: no race

    def full():
        if len(events) >= LIMIT * stride:
            # The timer thread cannot get the GIL (the program set a huge
            # switch interval, say): drop rather than grow.
            n = len(events)
            del events[:n]
            st['dropped'] += n // stride
        if not wake.locked():
            return  # the timer thread is on its way
        if in_main():
            wake_ticker()
        else:
            flush()


    def first_events():
        # The main thread wakes the timer thread instead (see full()).
        first[0] = False
        if in_main():
            hurry()
            wake_ticker()
        else:
            flush()

    # The timer thread gets the GIL from a busy main thread after a switch
    # interval (5 ms by default): for the first events, 0.1 ms, put back
    # once it has flushed (unless the program set another one meanwhile).
    hurried = 0.0001

    def hurry():
        # Never once the session has ended (a callback that was already
        # running when it did): nothing would put it back.
        if not st['on']:
            return
        try:
            now = sys.getswitchinterval()  # 3.2+
            if now > hurried and 'interval' not in st:
                st['interval'] = now
                sys.setswitchinterval(hurried)
        except an_exception:
            pass
        if not st['on']:
            unhurry()  # ended meanwhile (the GIL passes between two lines)

    def unhurry():
        # The saved value is forgotten only once the program's is back: a
        # signal handler of the program that raises in between leaves it
        # for the next call (the timer's next turn, uninstall, the undo's
        # retries).
        was = st.get('interval')
        if was is None:
            return
        try:
            if abs(sys.getswitchinterval() - hurried) < 1e-7:
                # Kept in whole microseconds, truncated: was itself
                # (3700 us read back as 0.0036999...) would lose one.
                sys.setswitchinterval(was + 5e-7)
            st.pop('interval', None)
        except an_exception:
            pass

    def interrupted():
        # A KeyboardInterrupt caught in a callback (only the main thread
        # gets them): the timer thread hands it back, woken now.
        st['kbd'] = True
        main_ident[0] = get_ident()
        wake_ticker()

    return dict(wake=wake, timed_wait=timed_wait, wake_ticker=wake_ticker, full=full, first_events=first_events,
                hurry=hurry, unhurry=unhurry, interrupted=interrupted)


def _lptrace_definitions(codes, thread_watch, starts, qualify, raised_by_program, an_exception, wanted, counters,
                         want_args, want_stack, define, record, ring, aggregate, srepr, nat, hook):
    # The definitions the events refer to: functions (C, once each),
    # values (V), types the machine code may show (Y).

    def code_id(code, frame):
        # The verdict of the filters and the record are made once per
        # function; the program's later calls cost one dict lookup.
        c = codes.get(id(code))
        if c is None:
            if thread_watch[0]:
                hook['hook_threading']()  # (made later)
            if code.co_name == '_bootstrap' and getattr(code, 'co_qualname', 'Thread._bootstrap') == 'Thread._bootstrap' \
                    and code.co_filename.replace('\\', '/').endswith(('/threading.py', '/threading.pyc')):
                starts.add(id(code))  # Thread._bootstrap: a new thread (see renew_thread)
            if code.co_filename == '<lptrace>' or (code.co_filename == '<string>' and '<lptrace>' in code.co_consts):
                codes[id(code)] = c = (-1, code)  # our own code, or the wrapper that runs it
                return -1
            name = getattr(code, 'co_qualname', None) or qualify(code, frame)
            module = ''
            try:
                module = frame.f_globals.get('__name__') or ''
                if not isinstance(module, str):
                    module = ''
            except an_exception:
                if raised_by_program():
                    raise
            if wanted is not None and not wanted(code.co_name, name, module, code.co_filename):
                codes[id(code)] = c = (-1, code)
                return -1
            i = next(counters['code'])
            text = '%d\t%s\t%s\t%d\t%s' % (i, name[:500], code.co_filename[:1000], code.co_firstlineno, module[:500].replace('\t', ' '))
            if want_args:
                # The names of the arguments the machine code writes
                # (native_args_amd64.s: none with *args or **kwargs).
                text += '\t' + ' '.join(code.co_varnames[:code.co_argcount + getattr(code, 'co_kwonlyargcount', 0)])
            if not define(record(b'C', text)):
                return -2  # not kept: defined again at its next call
            r = ring[0]
            if aggregate and r is not None and i < _LPTRACE_COUNTED:
                r[1][8] = i + 1  # how far lptrace reads the -c table
            codes[id(code)] = (i, code)  # after its definition: see thread_index()
            return i
        return c[0]

    def value(text):
        i = next(counters['value'])
        if not define(record(b'V', '%d\t%s' % (i, text))):
            return 0  # (the event shows without its value)
        return i + 1

    def args_text(code, frame):
        n = code.co_argcount + getattr(code, 'co_kwonlyargcount', 0)
        flags = code.co_flags
        n += bool(flags & 4) + bool(flags & 8)  # *args, **kwargs
        loc = frame.f_locals
        parts = []
        for name in code.co_varnames[:n]:
            if name in loc:
                v = loc[name]
                parts.append('%s=%s' % (name, srepr(v).replace('\t', '\\t')))
                teach_value(v)
        return '\t'.join(parts)

    def call_text(code, frame):
        # A call's value: its arguments (-a), then, with -k, its callers,
        # innermost first, each after a \x1f: "qualname\tfile\tline".
        text = args_text(code, frame) if want_args else ''
        if want_stack:
            f, n = frame.f_back, 0
            while f is not None and n < 64:
                cc = f.f_code
                if not (cc.co_filename == '<lptrace>' or (cc.co_filename == '<string>' and '<lptrace>' in cc.co_consts)):
                    name = getattr(cc, 'co_qualname', None) or (qualify(cc, f) if qualify else cc.co_name)
                    text += '\x1f%s\t%s\t%d' % (name, cc.co_filename, f.f_lineno)
                    n += 1
                f = f.f_back
            if f is not None:
                text += '\x1f...'
        return text

    # Types whose objects the machine code may show as <Name at 0x...>
    # (native_args_amd64.s), each held while it may: its address is never
    # another type's meanwhile.
    taught = {}

    def teach_value(v):
        # The types of V and of its items, if a tuple (see native_args_amd64.s)
        t = type(v)
        if id(t) not in taught:
            teach(t)
        if t is tuple:
            for x in v[:16]:
                if id(type(x)) not in taught:
                    teach(type(x))

    def teach(t):
        n = nat[0]
        if n is None or n[10] is None or len(taught) >= 512:
            return
        name = srepr.plain(t)
        if name is None:
            taught[id(t)] = None  # shown otherwise: never asked again
            return
        if define(record(b'Y', '%d\t%s' % (id(t), name))) and n[10](id(t)):
            taught[id(t)] = t

    return dict(code_id=code_id, value=value, args_text=args_text, call_text=call_text, taught=taught,
                teach_value=teach_value, teach=teach)


def _lptrace_lifecycle(st, os, sys, itertools, atexit, forking, follow, new_lock, counters, ring, child_slot, next_slot,
                       nslots, wr, events, stride, an_exception, base_exception, keyboard_interrupt, define, started,
                       meta, first, start_thread, tool, monitoring, watched, prev_profiles, get_ident,
                       prev_thread_hook, registry, session, limit, headroom_back, nat, codes, threads, switched,
                       taught, last, unhurry, flush_at_exit, undo, payload_globals, hook):
    # The session's end (uninstall: everything it set is put back), a
    # forked child's start (in_child) and the at-fork callbacks.

    def in_child():
        # (parts made after this one)
        profiler, thread_start, the_programs = hook['profiler'], hook['thread_start'], hook['the_programs']
        # A forked child (multiprocessing, os.fork) inherits the hook: it
        # must not duplicate events, and keeps our pipe only when lptrace
        # follows children (-f); then it starts its own tables and timer.
        if not st['on'] or os.getpid() == st['pid']:
            return
        forking[0] = False
        if follow:
            st['pid'] = os.getpid()
            st['lock'] = new_lock()  # may have been held at fork
            st['dropped'] = 0
            forget()
            for k in counters:
                counters[k] = itertools.count()
            # Its own slot of the ring, which its parent handed it at the
            # fork (the whole file is mapped here too); else the pipe.
            r, k = ring[0], child_slot[0]
            ring[0], next_slot[0] = None, nslots[0]  # (no slot for its own children)
            wr[:] = [events.append, lambda w, x: events.extend((w, x)), lambda w, x, y: events.extend((w, x, y)), None]
            if r is not None and k is not None:
                try:
                    c = _lptrace_ring(r[5], k, stride)
                    w = c[3] or _lptrace_machine_writers(c)
                    if w is not None:
                        c[3] = w
                        ring[0] = c
                        wr[:] = list(w)
                except an_exception:
                    pass
            st['kicked'] = (0, 0)
            if ring[0] is None or not define(started()):
                meta.append(started())
            first[0] = True
            try:
                start_thread(hook['ticker'], ())
            except an_exception:
                pass
            return
        st['on'] = False
        # The parent's ring is no business of the child's.
        ring[0] = None
        wr[:] = [events.append, lambda w, x: events.extend((w, x)), lambda w, x, y: events.extend((w, x, y)), None]
        fd, st['fd'] = st['fd'], -1
        try:
            os.close(fd)
        except OSError:
            pass
        try:
            if tool[0] is not None:
                monitoring.set_events(tool[0], 0)
                for e in watched:
                    monitoring.register_callback(tool[0], e, None)
                monitoring.free_tool_id(tool[0])
            elif sys.getprofile() is profiler:
                sys.setprofile(prev_profiles.get(get_ident()))
            t = sys.modules.get('threading')
            if t is not None and getattr(t, '_profile_hook', None) in (profiler, thread_start):
                t.setprofile(the_programs(prev_thread_hook[0]))
            registry.pop(session, None)
        except BaseException:
            pass
        # Nothing of the session stays in the child: not the machine-code
        # callback and its mappings (megabytes of private copies in every
        # worker of a forking server), not the tables, not the headroom.
        forget()
        fork_ref[:] = [None, None, None]
        try:
            if limit[0] is not None:
                headroom_back(limit[0])
        except base_exception:
            pass

    def forget():
        # What a session holds of the program's functions and threads, and
        # its queues (the machine-code callback first: before 3.12 the GIL
        # may pass between two lines, and a freed code object's address
        # may be another's meanwhile).
        n, nat[0] = nat[0], None
        if n is not None:
            n[5]()  # a thread's next event removes the profile function
        codes.clear()
        threads.clear()
        switched.clear()
        taught.clear()  # (the machine code is off: it shows none of them)
        last[0] = (None, None, 0)
        del events[:]
        del meta[:]
        unhurry()

    fork_ref = [in_child]

    def uninstall():
        # (parts made after this one)
        profiler, thread_start, the_programs = hook['profiler'], hook['thread_start'], hook['the_programs']
        if not st['on'] and st['fd'] < 0:
            return
        st['on'] = False
        for _ in range(3):  # a signal handler of the program may interrupt it
            try:
                if tool[0] is not None:
                    m = monitoring
                    m.set_events(tool[0], 0)
                    for e in watched:
                        m.register_callback(tool[0], e, None)
                    m.free_tool_id(tool[0])
                    tool[0] = None
                break
            except keyboard_interrupt:
                st['kbd'] = True
            except base_exception:
                if tool[0] is None:
                    break
        try:
            if monitoring is None:
                t = sys.modules.get('threading')
                if t is not None and getattr(t, '_profile_hook', None) in (profiler, thread_start):
                    t.setprofile(the_programs(prev_thread_hook[0]))
                if sys.getprofile() is profiler:
                    sys.setprofile(the_programs(prev_profiles.pop(get_ident(), None)))
        except BaseException:
            pass
        try:
            if hasattr(atexit, 'unregister'):
                atexit.unregister(flush_at_exit)
            else:  # 2.7
                atexit._exithandlers[:] = [h for h in atexit._exithandlers if h[0] is not flush_at_exit]
        except an_exception:
            pass
        fork_ref[:] = [None, None, None]
        forget()
        # The ring goes with its last reference (a callback running now
        # holds one a moment more): unmapped, nothing of it stays.
        ring[0] = None
        wr[:] = [lambda w: None, lambda w, x: None, lambda w, x, y: None, None]
        if monitoring is None:
            try:
                hook['unhook_all_threads']()
            except base_exception:
                pass
        try:
            if limit[0] is not None:
                headroom_back(limit[0])
        except base_exception:
            pass
        registry.pop(session, None)
        if not registry:
            try:
                del sys.__lptrace__
            except an_exception:
                pass
        fd, st['fd'] = st['fd'], -1
        undo.pop('fd', None)
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
        # The payload's globals hold every function of the hook; what still
        # runs (the timer's last turn) needs none of them.
        payload_globals.clear()

    # Around a fork (3.7+): until the child has left its parent's session
    # (in_child), nothing of it may write into its parent's ring. Before the
    # fork the machine-code callback hands every call to the Python one,
    # which finds the new process first (forking), and the latest-call cache
    # is empty; a slot of the ring is handed to the child when lptrace
    # follows it. In the parent, all as before once the fork is done.
    def before_fork():
        forking[0] = True
        last[0] = (None, None, 0)
        n = nat[0]
        if n is not None:
            n[6](0)
        child_slot[0] = None
        if follow and ring[0] is not None and next_slot[0] < nslots[0]:
            child_slot[0] = next_slot[0]
            next_slot[0] += 1

    def after_fork_in_parent():
        forking[0] = False
        n = nat[0]
        if n is not None and st['on']:
            n[6](1)

    # The at-fork callbacks cannot be unregistered: they reach the session
    # through fork_ref, a holder emptied when the hook leaves, so that they
    # keep nothing of it alive (each attach would leak its code).
    fork_ref[1:] = [before_fork, after_fork_in_parent]

    def at_fork(i):
        def call():
            f = fork_ref[i] if len(fork_ref) > i else None
            if f is not None:
                f()
        return call
    return dict(in_child=in_child, forget=forget, uninstall=uninstall, before_fork=before_fork,
                after_fork_in_parent=after_fork_in_parent, fork_ref=fork_ref, at_fork=at_fork)


def _lptrace_callbacks(thread_index, nat, stride, wr, want_values, clock, want_times, events, BATCH, full, forking, os,
                       st, in_child, get_ident, ticker_ident, codes, code_id, getframe, starts, renew_thread,
                       starting_name, gen_flags, tool, fast, threads, last, first, first_events, value, call_text,
                       want_args, want_stack, keyboard_interrupt, interrupted, an_exception, raised_by_program,
                       want_ret_values, srepr, teach_value):
    # The Python callback's events: on_call and on_return, which the
    # profile function (before 3.12) and sys.monitoring's callbacks call.

    def emit(kind, c, val):
        # kind 0: call, 1: return, 2: exception, 4: resume, 5: suspend, 6:
        # which frame the next is (c: its address >> 3, 32 bits); val: a
        # value id or 0.
        w = kind << 56 | thread_index() << 32 | c
        n = nat[0]
        if n is not None and n[8] is not None and (kind == 6 or n[8](w)):
            return  # into the -c table kept in the program (which needs no frames)
        if stride == 1:
            wr[0](w)
        elif not want_values:
            wr[1](w, clock())
        elif not want_times:
            wr[1](w, val)
        else:
            wr[2](w, clock(), val)
        if len(events) >= BATCH * stride:
            full()

    def on_call(code, frame, kind=0):
        # The hot path after a miss of the cache above: a dict lookup for
        # the function, one for the thread, one append. frame is None from
        # sys.monitoring: the function's frame is then two levels up,
        # fetched only when needed. (Its callers, on_start and the
        # profiler, try the cache first, inline: a Python call costs as
        # much as that path itself.)
        try:
            if forking[0] and os.getpid() != st['pid']:
                # A child of os.fork(), before our at-fork callback (the
                # program's own ran first): it must not write into its
                # parent's ring.
                in_child()
                return True
            ident = get_ident()
            if ident == ticker_ident[0]:
                # Our timer thread in library code (3.12+ sees every
                # thread): never ours to show, and never disabled (that
                # would be for every thread).
                return True
            c = codes.get(id(code))
            if c is None:
                c = code_id(code, frame or getframe(2))
            else:
                c = c[0]
            n = nat[0]
            start = starts and id(code) in starts
            if start:
                renew_thread(starting_name(frame or getframe(2)))
            # Before 3.12 a generator's resumption reaches the profile
            # function as a call: the machine code cannot tell one from
            # the other, so such functions stay with this callback.
            mine = start or code.co_flags & gen_flags
            if c == -2:
                return True  # its definition did not fit: dropped, tried again next time
            if c < 0:
                if n is not None and tool[0] is None and not start:
                    n[1](0, id(code), 1 << 63)  # the profile function skips it
                return start  # (a thread's start stays watched: 3.12+ disables the rest)
            if fast:
                t = threads.get(ident)
                if t is None:
                    t = thread_index()
                w = kind << 56 | t << 32 | c
                if n is not None:
                    # A call the machine-code callback did not know: taught
                    # to it, and recorded in its ring (one queue keeps the
                    # order). codes keeps the code alive: its address stays
                    # its own. (A thread's start is never taught: each one
                    # comes here.)
                    if not mine:
                        n[1](0, id(code), c)
                    n[1](1, ident, t << 32)
                    n[2](w)
                    if first[0]:
                        first_events()
                    return True
                if not (mine or kind):
                    last[0] = (code, ident, w)
                if nat[0] is not None:
                    # go_native ran meanwhile (before 3.11 the GIL passes
                    # anywhere): the cache must stay empty, or this thread's
                    # calls of code would go to `events` while its others go
                    # to the ring (out of order).
                    last[0] = (None, None, 0)
                wr[0](w)
                if len(events) >= BATCH:
                    full()
                elif first[0]:
                    first_events()
            else:
                if n is not None:
                    # Taught as above; the event goes to the same ring.
                    if not mine:
                        n[1](0, id(code), c)
                    n[1](1, ident, thread_index() << 32)
                if kind and want_times:
                    # Which frame resumes: lptrace times the whole call
                    # (a generator's frame is the same until its end).
                    emit(6, frame_key(frame or getframe(2)), 0)
                emit(kind, c, value(call_text(code, frame or getframe(2))) if (want_args or want_stack) and not kind else 0)
                if first[0]:
                    first_events()
        except keyboard_interrupt:
            # The program's Ctrl-C, raised by its signal handler while our
            # code ran. Raising it from here would remove the hook (and hit
            # the program at a random place); the timer thread hands it back
            # (hand_back_sigint) once this callback has returned.
            interrupted()
        except an_exception:
            if raised_by_program():
                raise
            # ours: never the program's business
        return True

    def frame_key(f):
        # A generator's frame, as the machine code names it (3.12+: the
        # interpreter frame in it, whose frame object this is)
        n = nat[0]
        return (n[11](f) if n is not None and n[11] is not None else id(f)) >> 3 & 0xffffffff

    def on_return(code, kind, val, frame=None):
        try:
            if forking[0] and os.getpid() != st['pid']:
                in_child()  # (see on_call)
                return True
            c = codes.get(id(code))
            if c is None or c[0] < 0:
                return c is None  # unseen (called before we came): keep
            if ticker_ident[0] == get_ident():
                return True  # our timer thread (see on_call)
            v = 0
            if want_ret_values and kind != 5:
                v = value(srepr(val) if kind == 1 else _lptrace_exc_text(val, srepr))
                if kind == 1:
                    teach_value(val)
            n = nat[0]
            if n is not None:
                # A thread the machine-code callback did not know yet.
                n[1](1, get_ident(), thread_index() << 32)
            if kind == 5 and want_times:
                emit(6, frame_key(frame or getframe(2)), 0)  # (see on_call)
            emit(kind, c[0], v)
        except keyboard_interrupt:
            st['kbd'] = True
        except an_exception:
            if raised_by_program():
                raise
        return True
    return dict(emit=emit, on_call=on_call, frame_key=frame_key, on_return=on_return)


def _lptrace_profiler(monitoring, want_returns, gen_flags, sys, prev_profiles, get_ident, get_attr, last, wr, events,
                      BATCH, full, st, on_call, nat, forks_c, os, in_child, on_return, raised_by_program, an_exception,
                      keyboard_interrupt, switched):
    # Python < 3.12: the profile function, and a thread's switch to the
    # machine-code one (switch_native).

    # Python < 3.12: a profile function per thread. It removes itself from
    # its thread once tracing stopped. The profiler cannot see an exception
    # leaving a function (the return event then carries None); the
    # instruction the frame stopped at tells: a return or a yield, or else
    # an exception. (Only for returns, and only then imported: opcode's
    # import costs a process's first attach 0.3-0.8 ms with the GIL held.)
    normal_exit = _lptrace_exit_opcodes() if monitoring is None and want_returns else frozenset()

    v311 = sys.version_info[:2] == (3, 11)
    gen_ops = _lptrace_gen_opcodes() if gen_flags and (want_returns or v311) else {}
    points = {}

    def gen_points(code):
        # (offsets where its frame stands when it has yielded, those of its
        # starts: 3.11's RESUME 0), found once per function
        p = points.get(id(code))
        if p is None:
            p = (code,) + _lptrace_gen_points(code, gen_ops)
            if len(points) < 65536:
                points[id(code)] = p  # (holds the code: its id stays its own)
        return p[1:]

    def resumed(frame, code):
        # A frame that ran before: before 3.11 its f_lasti is past -1; 3.11
        # starts a function at a RESUME 0 and resumes it elsewhere.
        if v311:
            return frame.f_lasti not in gen_points(code)[1]
        return frame.f_lasti >= 0

    def profiler(frame, what, arg):
        if prev_profiles:
            ident = get_ident()
            prev = prev_profiles.get(ident)
            if prev is not None:
                alive = get_attr(prev, 'lptrace_alive', None)
                if alive is not None and not alive():
                    prev_profiles.pop(ident, None)  # an lptrace session that ended: called no more
                else:
                    prev(frame, what, arg)
        try:
            if what == 'call':
                # on_call's cached path, inlined (see on_start)
                code = frame.f_code
                l = last[0]
                if code is l[0] and get_ident() == l[1]:
                    wr[0](l[2])
                    if len(events) >= BATCH:
                        full()
                    return
            if not st['on']:
                # Gone: leave this thread at its first event of any kind
                # (unless a newer session chains us: it has its own place).
                if sys.getprofile() is profiler:
                    sys.setprofile(prev_profiles.pop(get_ident(), None))
            elif what == 'call':
                code = frame.f_code
                if code.co_flags & gen_flags and resumed(frame, code):
                    if want_returns:
                        on_call(code, frame, 4)
                else:
                    on_call(code, frame)
                if nat[0] is not None:
                    switch_native(get_ident())
            elif what == 'c_return' and (arg is forks_c[0] or arg is forks_c[1]) and os.getpid() != st['pid']:
                # os.fork() returned in a child (2.7 and 3.6 have no
                # os.register_at_fork; the machine-code profile function
                # sends us that event too).
                in_child()
            elif what == 'return' and want_returns:
                code = frame.f_code
                kind = 1
                if code.co_flags & gen_flags and frame.f_lasti in gen_points(code)[0]:
                    # Suspended. (An exception thrown into it that it does
                    # not catch leaves from the same place: told apart only
                    # on 3.12+.)
                    kind = 5
                elif arg is None:  # a value returned is never an exception
                    try:
                        op = code.co_code[frame.f_lasti]
                        if not isinstance(op, int):
                            op = ord(op)
                        if op not in normal_exit:
                            kind = 2
                    except an_exception:
                        if raised_by_program():
                            raise
                on_return(code, kind, arg, frame)
        except keyboard_interrupt:
            # See on_call(); escaping would remove the hook. (In a session
            # that has ended, no timer thread is left to hand it back: that
            # Ctrl-C is lost. Raising it here instead lands it in whatever
            # runs next, lptrace's own payloads included.)
            st['kbd'] = True
        except an_exception:
            # (3.6: even the comparisons above may run out of recursion
            # limit, in a program at its deepest)
            if raised_by_program():
                raise

    profiler.lptrace_alive = lambda: st['on']
    profiler.lptrace_chain = lambda ident: prev_profiles.get(ident)

    def switch_native(ident):
        # Before 3.12: this thread, on the Python profiler with no program's
        # profile function to call on, takes the machine-code one, once
        # (its misses come back here: sys.getprofile() is the same).
        n = nat[0]
        if n is not None and ident not in switched and ident not in prev_profiles and sys.getprofile() is profiler:
            switched.add(ident)
            try:
                n[0]()
            except an_exception:
                pass  # (an audit hook of the program refused it) the Python one stays
    return dict(profiler=profiler, switch_native=switch_native)


def _lptrace_thread_profiles(tool, st, get_ident, ticker_ident, os, in_child, sys, is_callable, profiler,
                             prev_profiles, nat, an_exception, thread_watch, prev_thread_hook, get_attr, renew_thread,
                             keyboard_interrupt):
    # Python < 3.12: the profile function of each thread, set (the
    # calling thread, threads the program starts, every other thread at
    # once) and taken back at the end.

    def the_programs(f):
        # A profile function to chain to and put back when we leave: not the
        # one of an lptrace session that has ended (each would keep the one
        # before it alive, a chain that grows with every overlapping attach).
        if f is not None and not getattr(f, 'lptrace_alive', lambda: True)():
            return None
        return f

    def install_thread():
        if tool[0] is None and st['on'] and get_ident() != ticker_ident[0]:
            if os.getpid() != st['pid']:
                # A child of os.fork() that our profile function did not
                # see (2.7, 3.6: forked from a thread it does not run in).
                in_child()
                return
            prev = sys.getprofile()
            if prev is not None and not is_callable(prev):
                # A C profiler's object (cProfile's): it cannot be called
                # on from ours, nor put back by sys.setprofile(). The
                # thread is left to it, untraced.
                return
            if prev is not profiler and calls_us(prev):
                # Another session's profile function that calls ours on
                # already (it came after us): chaining to it would loop.
                return
            if prev is not profiler:
                prev = the_programs(prev)
                if prev is not None:
                    prev_profiles[get_ident()] = prev
                n = nat[0]
                if prev is None and n is not None:
                    # The machine-code profile function, SLOW = profiler
                    # (a thread with the program's own profile function
                    # keeps the Python one, which calls it on).
                    try:
                        n[0]()
                        return
                    except an_exception:
                        pass
                sys.setprofile(profiler)

    def hook_threading():
        t = sys.modules.get('threading')
        if st['on'] and t is not None and getattr(t, 'setprofile', None) is not None:
            thread_watch[0] = False
            prev_thread_hook[0] = the_programs(getattr(t, '_profile_hook', None))
            t.setprofile(thread_start)
            if not st['on'] and getattr(t, '_profile_hook', None) is thread_start:
                t.setprofile(prev_thread_hook[0])  # the session ended meanwhile

    def calls_us(f, ident=None):
        # Whether profile function f calls ours on in thread ident (this
        # one by default), itself or through others (lptrace sessions that
        # came later).
        if ident is None:
            ident = get_ident()
        for _ in range(16):
            chain = get_attr(f, 'lptrace_chain', None) if f is not None else None
            if chain is None:
                return False
            f = chain(ident)
            if f is profiler:
                return True
        return False

    def hook_all_threads():
        # Before 3.12: the profile function of every other thread of this
        # interpreter, set from here (as 3.12's PyEval_SetProfileAllThreads
        # does): a thread that never blocks (it computes) reaches no safe
        # point of its own, where the engine would hook it, and its calls
        # went untraced. True when every thread is done. A thread with the
        # program's Python profile function chains to it, as in
        # install_thread; one with a C profiler (cProfile) is left to it.
        # Run by the timer thread; the states are changed by machine code
        # in one C call (see _lptrace_thread_state_layout).
        layout = state_layout()
        if layout is None:
            return False
        ctypes, trampoline, walk, gate = layout
        me, ours, done, prevs = get_ident(), id(profiler), [True], {}

        def decide(ident, func, obj):
            if not st['on']:
                done[0] = False
                return None
            if ident == me or (func == trampoline and obj == ours):
                return None  # the timer thread, or ours already
            prev = None
            if func:
                if func != trampoline or not obj:
                    return None  # a C profiler (cProfile), or another session's machine code
                prev = ctypes.cast(obj, ctypes.py_object).value
                if calls_us(prev, ident):
                    return None
                prev = the_programs(prev)
            prevs[ident] = prev
            return trampoline, ours
        for ident, ok in walk(decide, True):
            if not ok:
                done[0] = False  # it ended, changed, or an audit hook refused
            elif prevs.get(ident) is not None:
                prev_profiles[ident] = prevs[ident]
        return done[0]

    layout_cache = []

    def state_layout():
        # (see _lptrace_thread_state_layout) Made once, by the timer thread:
        # it calls sys.setprofile() in the thread that makes it.
        if not layout_cache and get_ident() == ticker_ident[0]:
            try:
                layout_cache.append(_lptrace_thread_state_layout(get_ident()))
            except an_exception:
                layout_cache.append(None)
        return layout_cache[0] if layout_cache else None

    def unhook_all_threads():
        # Before 3.12, at the end of the session: every thread whose profile
        # function is ours gets the program's back (or none) at once, as
        # hook_all_threads set them. (Without it, a thread that makes no
        # Python call, idle in C, kept ours, and with it the session.) The
        # gate closed first: a hook_all_threads under way sets nothing more.
        layout = layout_cache[0] if layout_cache else None
        if layout is None:
            return
        ctypes, trampoline, walk, gate = layout
        gate.value = 0
        ours = id(profiler)

        def decide(ident, func, obj):
            if func != trampoline or obj != ours:
                return None
            prev = the_programs(prev_profiles.get(ident))
            return (trampoline, id(prev)) if prev is not None else (0, 0)
        for ident, ok in walk(decide, False):
            if ok:
                prev_profiles.pop(ident, None)

    def thread_start(frame, what, arg):
        # threading's hook: at a new thread's first event, puts the profile
        # function (machine code where it can be) in place of itself.
        try:
            if sys.getprofile() is thread_start:
                # (the program's own hook first: install_thread calls it on)
                sys.setprofile(the_programs(prev_thread_hook[0]))
                renew_thread()
                install_thread()
        except keyboard_interrupt:
            st['kbd'] = True
        except an_exception:
            pass
        profiler(frame, what, arg)

    thread_start.lptrace_alive = profiler.lptrace_alive
    # It calls ours on: a thread that has it is ours to be (it takes ours at
    # its first event), not one to chain ours to (a loop: found with threads
    # that live a moment, hooked by hook_all_threads before their first
    # event, 2.7).
    thread_start.lptrace_chain = lambda ident: profiler
    return dict(the_programs=the_programs, install_thread=install_thread, hook_threading=hook_threading,
                calls_us=calls_us, hook_all_threads=hook_all_threads, unhook_all_threads=unhook_all_threads,
                thread_start=thread_start)


def _lptrace_monitoring(monitoring, tool, watched, last, get_ident, wr, events, BATCH, full, st, on_call, on_return,
                        keyboard_interrupt, interrupted, want_returns):
    # Python 3.12+: the callbacks of sys.monitoring's events, and
    # register(), which takes a tool id and sets them.
    names = ('E', 'on_start', 'on_start_native', 'on_py_return', 'on_throw', 'on_resume', 'on_yield', 'on_unwind',
             'register')
    if monitoring is None:
        return dict.fromkeys(names)
    E = monitoring.events
    DISABLE = monitoring.DISABLE

    def on_start(code, offset):
        # on_call's cached path (calls only; otherwise the cache stays
        # empty), inlined: a Python call less per event. (on_call must
        # stay one level below: it finds the function's frame two
        # levels up.)
        try:
            l = last[0]
            if code is l[0] and get_ident() == l[1]:
                wr[0](l[2])
                if len(events) >= BATCH:
                    full()
                return None
            if st['on'] and on_call(code, None):
                return None
            return DISABLE
        except keyboard_interrupt:
            interrupted()  # see on_call()

    def on_start_native(code, offset):
        # SLOW of the machine-code callback: a function or a thread it
        # does not know yet (on_call teaches them to it), or every call
        # once it is off (a registration that failed half way leaves
        # some of its builtins in place: the Python callback records).
        try:
            if st['on'] and on_call(code, None):
                return None
            return DISABLE
        except keyboard_interrupt:
            interrupted()  # see on_call()

    start = on_start

    def on_py_return(code, offset, retval):
        try:
            if st['on'] and on_return(code, 1, retval):
                return None
            return DISABLE
        except keyboard_interrupt:
            st['kbd'] = True

    def on_throw(code, offset, exc):
        # PY_THROW: a generator resumed by throw(). It cannot be
        # disabled: never DISABLE. (Itself SLOW of the machine-code
        # one: on_call must stay one level below.)
        try:
            if st['on']:
                on_call(code, None, 4)
        except keyboard_interrupt:
            interrupted()

    def on_resume(code, offset):
        # PY_RESUME: a generator or coroutine resumed (by next(), send()
        # or its event loop); the machine code's SLOW too.
        try:
            if st['on'] and on_call(code, None, 4):
                return None
            return DISABLE
        except keyboard_interrupt:
            interrupted()

    def on_yield(code, offset, retval):
        # PY_YIELD: suspended (a yield, an await that waits)
        try:
            if st['on'] and on_return(code, 5, None):
                return None
            return DISABLE
        except keyboard_interrupt:
            st['kbd'] = True

    def on_unwind(code, offset, exc):
        # PY_UNWIND cannot be disabled: never return DISABLE here.
        try:
            if st['on']:
                on_return(code, 2, exc)
        except keyboard_interrupt:
            st['kbd'] = True

    def register():
        for i in (4, 3, 5, 1, 0):
            if monitoring.get_tool(i) is None:
                tool[0] = i  # first: an interrupt in between must not leak the id
                monitoring.use_tool_id(i, 'lptrace')
                break
        if tool[0] is None:
            raise RuntimeError('no free sys.monitoring tool id')  # undone by the caller

        callbacks = [(E.PY_START, start)]
        if want_returns:
            # A generator's yield suspends it, and its resumption is no new
            # call: events of their own (kinds 5 and 4).
            callbacks += [(E.PY_RESUME, on_resume), (E.PY_RETURN, on_py_return),
                          (E.PY_YIELD, on_yield), (E.PY_UNWIND, on_unwind), (E.PY_THROW, on_throw)]
        mask = 0
        for e, f in callbacks:
            monitoring.register_callback(tool[0], e, f)
            watched.append(e)
            mask |= e
        monitoring.set_events(tool[0], mask)
        # A location an earlier session of this tool id disabled (a filtered
        # function returns DISABLE) stays disabled until this: without it,
        # a function filtered out once would be missing from later traces.
        # Other tools' callbacks merely disable theirs once more.
        restart = getattr(monitoring, 'restart_events', None)
        if restart is not None:
            restart()
    return dict(zip(names, (E, on_start, on_start_native, on_py_return, on_throw, on_resume, on_yield,
                            on_unwind, register)))


def _lptrace_native_switch(payload_globals, native_ok, fast, want_returns, ring, want_times, aggregate, want_values,
                           want_args, strsize, an_exception, base_exception, later_native, monitoring, E,
                           on_start_native, on_py_return, on_unwind, on_throw, on_resume, on_yield, profiler, tool, os,
                           st, nat, last):
    # The switch to the machine-code callback (native.py): built by the
    # timer thread (go_native), then registered or taken by each thread.

    def build_native(slow, slow_returns):
        # The machine-code callback (native.py) over SLOW (and SLOW_RETURNS,
        # 3.12+), or None: the options need values, or no ctypes, no
        # executable memory, a check that failed (then the Python callback
        # records). With more than calls, only over lptrace's ring: the
        # Python callback's events must go to the same queue.
        builder = payload_globals.get('_lptrace_native_ring')
        if native_ok and builder is not None and ((fast and not want_returns) or ring[0] is not None):
            try:
                return builder(slow, ring[0], want_returns | want_times << 1 | (aggregate and ring[0] is not None) << 2
                               | want_values << 4 | want_args << 5, slow_returns, strsize)
            except an_exception:
                pass
        return None

    def go_native():
        # The timer thread builds the machine-code callback after its first
        # flush (built in the install, it made a process's first attach
        # wait for ctypes' import and the build: 3-5 ms with the GIL held).
        # 3.12+: registered for PY_START in place of on_start. Before: each
        # thread on the Python profiler switches at its next call
        # (switch_native). What the Python callback queued meanwhile goes
        # out first (flush); its cache is emptied so that it queues nothing
        # more. The hook may be undone meanwhile (before 3.11 the GIL passes
        # anywhere; on 3.12+ the program's audit hooks run inside
        # register_callback): checked again after, and undone here.
        later_native[0] = False
        if monitoring is not None:
            # (The Python return callbacks serve as its SLOW as they are.)
            n = build_native(on_start_native, (on_py_return, on_unwind, on_throw, on_resume, on_yield))
        else:
            n = build_native(profiler, None)
        if n is None:
            return
        tid = tool[0]
        if os.getpid() == st['pid'] and st['on'] and nat[0] is None:
            nat[0] = n
            last[0] = (None, None, 0)
            mine = []
            if monitoring is not None:
                mine = [(E.PY_START, n[0])]
                if want_returns:
                    mine += [(E.PY_RESUME, n[7][3]), (E.PY_RETURN, n[7][0]), (E.PY_YIELD, n[7][4]),
                             (E.PY_UNWIND, n[7][1]), (E.PY_THROW, n[7][2])]
            try:
                for e, f in mine:
                    monitoring.register_callback(tid, e, f)
                if st['on']:
                    return
                if monitoring is not None and monitoring.get_tool(tid) is None:
                    # Registered under an id the undo had freed already.
                    for e, f in mine:
                        monitoring.register_callback(tid, e, None)
            except base_exception:
                pass
            if nat[0] is n:
                nat[0] = None
        n[5]()
    return dict(build_native=build_native, go_native=go_native)


def _lptrace_ticker(st, ticker_ident, get_ident, base_exception, an_exception, timed_wait, wake, sleep,
                    hand_back_sigint, flush, unhurry, drain, nat, later_native, first, go_native, later_all, meta,
                    record, hook_all_threads, reader_gone, uninstall):
    # The timer thread's function (ticker), with the program's signals
    # blocked in it.

    # The program's signals never go to our thread: delivered there, their
    # handler's effect would reach the main thread at its next instruction,
    # maybe inside a payload of lptrace that holds the main thread stopped
    # (and holds the signals sent to it). 2.7: through the C library. Set
    # up before the hook is on: it would trace ctypes.
    block_names = ('SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM',
                   'SIGTERM', 'SIGCHLD', 'SIGWINCH', 'SIGVTALRM', 'SIGPROF',
                   'SIGURG')  # (SIGURG, SIGWINCH, SIGCHLD: lptrace never stops this thread, see inject)
    try:
        import _signal
        block_set = [getattr(_signal, n) for n in block_names]
        sigmask = _signal.pthread_sigmask
        block_program_signals = lambda: sigmask(_signal.SIG_BLOCK, block_set)
    except an_exception:
        try:
            import signal as signal_mod
            import ctypes
            libc = ctypes.CDLL(None)
            block_mask = ctypes.create_string_buffer(128)  # a sigset_t
            libc.sigemptyset(block_mask)
            for n in block_names:
                libc.sigaddset(block_mask, getattr(signal_mod, n))
            pthread_sigmask = libc.pthread_sigmask  # looked up now: ctypes runs Python code for it
            block_program_signals = lambda: pthread_sigmask(0, block_mask, None)  # SIG_BLOCK
        except an_exception:
            block_program_signals = lambda: None

    # Flushes idle programs every 50 ms, and notices within that time that
    # lptrace is gone even if the program makes no call at all.
    # No builtin name here (0, not False): on 2.7 a thread that starts
    # after an undo cleared the payload's globals has none.
    def ticker():
        if not st['on']:
            return
        ticker_ident[0] = get_ident()
        try:
            block_program_signals()
        except base_exception:
            pass
        pid = st['pid']
        turns = 0
        while st['on'] and st['pid'] == pid:
            turns += 1
            if timed_wait:
                # Every 5 ms while events come fast (over 400000 a second
                # in the last turn): one write never outgrows the pipe.
                wake.acquire(1, 0.005 if st['taken'] >= 2048 else 0.05)
            else:
                sleep(0.05)
            try:
                if st.pop('kbd', 0):
                    hand_back_sigint()
                flush()
                unhurry()
                drain(15)
                n = nat[0]
                if n is not None and n[9] is not None and st['on']:
                    n[9]()  # the machine code's clock: calibrated against ours
                if later_native[0] and st['on'] and (not first[0] or turns > 1):
                    # After the flush that took the first events (built
                    # before them, cold, it would hold them back 3-5 ms),
                    # or at the second turn when there are none (a filter
                    # may reject every call: the Python callback would
                    # then see them all).
                    go_native()
                if later_all[0] and st['on']:
                    # Before 3.12, at the first turn (after the first
                    # events): every other thread's profile function.
                    # lptrace hooks the threads that park itself; this
                    # reaches those that never do.
                    later_all[0] = False
                    meta.append(record(b'H', 'all' if hook_all_threads() else 'some'))
                    flush()
                if st['on'] and reader_gone():
                    uninstall()
            except base_exception:
                pass
        if st.pop('kbd', 0):
            hand_back_sigint()
    return dict(ticker=ticker)


def _lptrace_switch_on(os, sys, atexit, at_fork, flush_at_exit, an_exception, later_native, native_ok, monitoring,
                       register, thread_watch, hook_threading, install_thread, later_all, registry, session, meta,
                       started, hurry, start_thread, ticker, limit, st, undo, fifo, flush, first):
    # The hook goes on, its parts made: the at-fork and at-exit
    # callbacks, the callbacks of every thread, the timer thread; then the
    # start record, which tells lptrace the hook is in place.
    at_fork_child = at_fork(0)  # (see _lptrace_lifecycle)
    if hasattr(os, 'register_at_fork'):
        os.register_at_fork(before=at_fork(1), after_in_parent=at_fork(2), after_in_child=at_fork_child)

    try:
        # The last events of a program that exits (the timer thread dies
        # with it, unflushed). Registered before the hook is on: our own
        # calls must not show.
        atexit.register(flush_at_exit)
    except an_exception:
        pass
    # The machine-code callback comes from the timer thread once the first
    # events are out (go_native): built here, it would make the first
    # attach in a process wait for ctypes' import and the build (3-5 ms
    # with the GIL held, 0.6 ms in a process that has ctypes). Until then
    # on_start (3.12+) or the Python profiler records; before 3.12 each
    # thread switches to it at its next call.
    later_native[0] = native_ok

    if monitoring is not None:
        register()
    else:
        thread_watch[0] = True
        hook_threading()
        install_thread()
        later_all[0] = True

    registry[session] = install_thread
    meta.insert(0, started())
    # Hurried before the timer thread starts: a thread waiting for the GIL
    # reads the interval only between its waits, so one that began waiting
    # under the program's 5 ms would hold the first events back that long.
    hurry()
    start_thread(ticker, ())
    try:
        # (from here on undo never runs: the session is complete) Not on
        # 3.6-3.8, where a thread that recursed into the headroom and got a
        # RecursionError there aborts the program once the limit comes
        # down ("Cannot recover from stack overflow": deeper than the limit
        # + 50 after an overflow); there the calls a program makes within a
        # few frames of its limit are missing from a trace that records
        # values or times (our callback's own calls fail there: see
        # _lptrace_raised_by_program), and one at the limit gets its
        # RecursionError a frame early.
        if not (3, 6) <= sys.version_info < (3, 9):
            sys.setrecursionlimit(sys.getrecursionlimit() + 100)
            limit[0] = sys.getrecursionlimit()
            if sys.version_info >= (3, 11):
                limit[0] -= 100  # once lptrace lowered its own (inject.Headroom)
    except an_exception:
        pass
    if (3, 6) <= sys.version_info < (3, 9):
        try:
            # Made now: _lptrace_overflow_cleared needs it, deep in a
            # recursion, with few frames left.
            import ctypes
            _lptrace_state_getter(ctypes)
        except an_exception:
            pass
    st['live'] = True
    undo['done'] = True
    _lptrace_remove_fifo(fifo)
    flush()  # the S record: lptrace now knows the hook is in place
    first[0] = True


def _lptrace_qualifier():
    """Before 3.11 (no co_qualname): qualify(code, frame), the qualified
    name of the function running CODE in FRAME (its first call), as 3.11+
    names it, Class.method, found where the function lives: the class of
    its first argument (self, cls), the module's globals or the module's
    classes; else its bare name (a nested function). Runs no code of the program: types and dicts
    are read through their own descriptors and methods."""
    import types
    function = types.FunctionType
    wrappers = (staticmethod, classmethod)
    type_mro = type.__dict__['__mro__'].__get__
    type_dict = type.__dict__['__dict__'].__get__
    type_name = type.__dict__['__name__'].__get__
    dict_get = dict.get
    proxy_get = type(type.__dict__).get  # a class's __dict__ (the proxy of a plain dict)
    is_type = lambda v: type in type_mro(type(v))
    raised_by_program = _lptrace_raised_by_program  # (the payload's globals go first at the end)

    def named(v, code):
        # The function object of CODE that V is or wraps, or None.
        t = type(v)
        if t in wrappers:
            v, t = v.__func__, type(v.__func__)
        elif t is property:
            for f in (v.fget, v.fset, v.fdel):
                if type(f) is function and f.__code__ is code:
                    return f
            return None
        return v if t is function and v.__code__ is code else None

    def qualify(code, frame):
        name = code.co_name
        if frame is None:
            return name
        try:
            if code.co_argcount > 0:
                first = dict_get(frame.f_locals, code.co_varnames[0])
                for owner in ((first,) if is_type(first) else ()) + (type(first),):
                    for klass in type_mro(owner):
                        f = named(proxy_get(type_dict(klass), name), code)
                        if f is not None:
                            return getattr(f, '__qualname__', None) or type_name(klass) + '.' + name
            g = frame.f_globals
            if type(g) is dict:
                if named(dict_get(g, name), code) is not None:
                    return getattr(dict_get(g, name), '__qualname__', name)
                # A staticmethod (no self to start from): the module's
                # classes.
                for v in list(dict.values(g)):
                    if is_type(v):
                        f = named(proxy_get(type_dict(v), name), code)
                        if f is not None:
                            return getattr(f, '__qualname__', None) or type_name(v) + '.' + name
        except Exception:
            if raised_by_program():
                raise
        return name
    return qualify


def _lptrace_gen_opcodes():
    # YIELD_VALUE, YIELD_FROM (before 3.11) and RESUME (3.11), by name.
    try:
        import opcode
        return dict((n, opcode.opmap[n]) for n in ('YIELD_VALUE', 'YIELD_FROM', 'RESUME') if n in opcode.opmap)
    except Exception:
        return {}


def _lptrace_gen_points(code, ops):
    # (offsets CODE's frame stands at when suspended, offsets of 3.11's
    # RESUME 0): a yield stops at its YIELD_VALUE; an await before 3.11
    # repeats its YIELD_FROM, so it stops one instruction before it.
    # Instructions: 2 bytes since 3.6; 1, or 3 with an argument, on 2.7.
    suspend, starts = set(), set()
    b = bytearray(code.co_code)
    yv, yf, rs = ops.get('YIELD_VALUE'), ops.get('YIELD_FROM'), ops.get('RESUME')
    wide = not isinstance(code.co_code, str)  # (2.7: str)
    i = 0
    while i < len(b):
        op = b[i]
        if op == yv:
            suspend.add(i)
        elif op == yf and i >= 2:
            suspend.add(i - 2)
        elif op == rs and wide and i + 1 < len(b) and b[i + 1] == 0:
            starts.add(i)
        i += 2 if wide else 3 if op >= 90 else 1
    return frozenset(suspend), frozenset(starts)


def _lptrace_exit_opcodes():
    # Instructions a frame stops at when it leaves normally (Python < 3.12).
    try:
        import opcode
        return frozenset(opcode.opmap[n] for n in ('RETURN_VALUE', 'YIELD_VALUE', 'YIELD_FROM', 'RETURN_GENERATOR', 'SEND')
                         if n in opcode.opmap)
    except Exception:
        return frozenset()


def _lptrace_run_install():
    # A signal handler of the program may raise anywhere in the install
    # when it runs in the main thread (the program's Ctrl-C): what was done
    # is then undone (lptrace, seeing no S record, sends the install again)
    # and a Ctrl-C goes back to the program. Once the hook is complete, it
    # stays.
    undo = {}
    try:
        import os
        import sys
        get_ident = (_lptrace_thread_functions() or (0, 0, lambda: None))[2]
        give_back = _lptrace_sigint_sender()
        _lptrace_install(SESSION, FIFO, FIFO_ID, CONFIG, undo)
    except BaseException as e:
        kbd = isinstance(e, KeyboardInterrupt)
        if not undo.get('done'):
            # Signals may go on arriving: retried (each step is idempotent).
            for _ in range(5):
                try:
                    if 'uninstall' in undo:
                        undo['uninstall']()
                    else:
                        if 'fd' in undo:
                            os.close(undo.pop('fd'))
                        if undo.pop('claimed', False):
                            sys.__lptrace__.pop(SESSION, None)
                        if not sys.__dict__.get('__lptrace__', True):
                            del sys.__lptrace__
                    break
                except KeyboardInterrupt:
                    kbd = True
                except BaseException:
                    pass
        if kbd:
            try:
                give_back(get_ident())  # raised here: this is the main thread
            except BaseException:
                pass


_lptrace_run_install()
