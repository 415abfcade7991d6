# lptrace's tracing hook. It runs inside the target, installed once with
# SESSION, FIFO and VERSION in its globals; per-thread installation (Python
# < 3.12) calls INSTALL_THREAD again in each thread that existed before.
# Python 2.7 and 3.6+. It must never raise into the program, never block it,
# and remove itself when lptrace goes away (the pipe breaks).
#
# Records (kind byte, 4-byte little-endian length, data):
#   S  started: "pid<TAB>sys.version"
#   C  a code object seen for the first time: "id<TAB>name<TAB>file<TAB>line"
#   T  a thread seen for the first time: "index<TAB>native id<TAB>name"
#   B  a batch of events: little-endian uint64 each, thread index << 32 | code id
#   D  events dropped because the pipe was full: count



def _lptrace_install(session, fifo, fifo_id):
    import os
    import sys
    import errno
    import struct
    import time
    from array import array
    try:
        import _thread as thread_mod
    except ImportError:
        import thread as thread_mod
    get_ident = thread_mod.get_ident
    interrupt_main = thread_mod.interrupt_main

    registry = sys.__dict__.setdefault('__lptrace__', {})
    if session in registry:
        return
    fd = _lptrace_open_fifo(fifo, fifo_id)
    if fd < 0:
        return

    st = {'on': True, 'fd': fd, 'pid': os.getpid(), 'dropped': 0, 'tail': b''}
    codes = {}           # id(code) -> (code id, code); the code is kept alive
    threads = {}         # thread ident -> thread index
    import itertools
    code_ids, thread_ids = itertools.count(), itertools.count()
    events = array('L')  # (thread index << 32) | code id: one append per event
    meta = []            # pending C/T records, sent before the next batch
    pack = struct.pack
    sigpipe = _lptrace_sigpipe_guard()

    def write(data):
        # Non-blocking: a full pipe drops (the caller counts), a partial
        # write keeps the tail so records stay aligned, anything else means
        # lptrace is gone.
        buf = st['tail'] + data
        try:
            n = sigpipe(os.write, st['fd'], buf)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return False
            uninstall()
            return False
        st['tail'] = buf[n:]
        return True

    def reader_gone():
        try:
            import select
            p = select.poll()
            p.register(st['fd'], select.POLLOUT)
            for _, ev in p.poll(0):
                if ev & (select.POLLERR | select.POLLHUP):
                    return True
        except Exception:
            pass
        return False

    def record(kind, payload):
        if not isinstance(payload, bytes):
            payload = payload.encode('utf-8', 'replace')
        return kind + pack('<I', len(payload)) + payload

    flushing = thread_mod.allocate_lock()

    def flush():
        # One writer at a time (os.write releases the GIL: two writers would
        # interleave records); a thread that finds it busy leaves its events
        # queued for the next flush.
        if not st['on'] or not flushing.acquire(False):
            return
        try:
            if os.getpid() != st['pid']:
                in_child()
                return
            # Take what is queued now; other threads may append meanwhile
            # (each step below is one bytecode, atomic under the GIL).
            # Events first: the definitions an event needs were queued
            # before it, so the meta taken next includes them.
            ev = events[:]
            del events[:len(ev)]
            m = meta[:]
            del meta[:len(m)]
            out = b''.join(m)
            if ev:
                raw = ev.tobytes() if hasattr(ev, 'tobytes') else ev.tostring()
                out += record(b'B', raw)
            if st['dropped']:
                out += record(b'D', str(st['dropped']))
            if not out:
                return
            if write(out):
                st['dropped'] = 0
            else:
                meta[0:0] = m  # definitions must not be lost
                st['dropped'] += len(ev)
        finally:
            flushing.release()

    def thread_index():
        ident = get_ident()
        i = threads.get(ident)
        if i is None:
            i = threads[ident] = next(thread_ids)  # next() is atomic
            native = getattr(thread_mod, 'get_native_id', None)
            name = ''
            t = sys.modules.get('threading')
            if t is not None:
                try:
                    name = t._active[ident].name
                except Exception:
                    pass
            meta.append(record(b'T', '%d\t%s\t%s' % (i, native() if native else ident, name)))
        return i

    def code_id(code):
        c = codes.get(id(code))
        if c is None:
            if code.co_filename == '<lptrace>':
                return -1  # our own code
            c = codes[id(code)] = (next(code_ids), code)
            name = getattr(code, 'co_qualname', code.co_name)
            meta.append(record(b'C', '%d\t%s\t%s\t%d' % (c[0], name, code.co_filename, code.co_firstlineno)))
        return c[0]

    def event(code):
        try:
            c = code_id(code)
            if c < 0:
                return False
            events.append(thread_index() << 32 | c)
            if len(events) >= 512:
                flush()
        except KeyboardInterrupt:
            # The program's Ctrl-C, raised by its signal handler while our
            # code ran. Raising it from here would remove the hook (and hit
            # the program at a random place); the timer thread hands it back
            # with interrupt_main() once this callback has returned.
            st['kbd'] = True
        except Exception:
            pass  # ours: never the program's business
        return True

    def in_child():
        # A forked child (multiprocessing, os.fork) inherits the hook: it
        # must neither duplicate events nor keep our pipe open.
        if st['on'] and os.getpid() != st['pid']:
            st['on'] = False
            fd, st['fd'] = st['fd'], -1
            try:
                os.close(fd)
            except OSError:
                pass
            try:
                if tool[0] is not None:
                    monitoring.set_events(tool[0], 0)
                    monitoring.register_callback(tool[0], monitoring.events.PY_START, None)
                    monitoring.free_tool_id(tool[0])
                sys.setprofile(None)
                t = sys.modules.get('threading')
                if t is not None:
                    t.setprofile(None)
                registry.pop(session, None)
            except BaseException:
                pass

    if hasattr(os, 'register_at_fork'):
        os.register_at_fork(after_in_child=in_child)

    monitoring = getattr(sys, 'monitoring', None)
    tool = [None]
    ticker_ident = [None]

    def uninstall():
        if not st['on'] and st['fd'] < 0:
            return
        st['on'] = False
        try:
            if tool[0] is not None:
                m = monitoring
                m.set_events(tool[0], 0)
                m.register_callback(tool[0], m.events.PY_START, None)
                m.free_tool_id(tool[0])
                tool[0] = None
            else:
                t = sys.modules.get('threading')
                if t is not None:
                    t.setprofile(None)
                if sys.getprofile() is profiler:
                    sys.setprofile(None)
        except BaseException:
            pass
        # The at-fork callback cannot be unregistered: let it hold nothing.
        codes.clear()
        threads.clear()
        registry.pop(session, None)
        if not registry:
            try:
                del sys.__lptrace__
            except Exception:
                pass
        fd, st['fd'] = st['fd'], -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    # Python < 3.12: a profile function per thread. It removes itself from
    # its thread once tracing stopped.
    def profiler(frame, what, arg):
        try:
            if what == 'call':
                if st['on']:
                    event(frame.f_code)
                else:
                    sys.setprofile(None)
        except KeyboardInterrupt:
            st['kbd'] = True  # see event(); escaping would remove the hook

    def install_thread():
        if tool[0] is None and st['on'] and get_ident() != ticker_ident[0] and sys.getprofile() is not profiler:
            sys.setprofile(profiler)

    if monitoring is not None:
        for i in (4, 3, 5, 1, 0):
            if monitoring.get_tool(i) is None:
                monitoring.use_tool_id(i, 'lptrace')
                tool[0] = i
                break
        if tool[0] is None:
            os.close(fd)
            return
        DISABLE = monitoring.DISABLE

        def on_start(code, offset):
            try:
                if st['on'] and event(code):
                    return None
                return DISABLE
            except KeyboardInterrupt:
                st['kbd'] = True
        monitoring.register_callback(tool[0], monitoring.events.PY_START, on_start)
        monitoring.set_events(tool[0], monitoring.events.PY_START)
    else:
        t = sys.modules.get('threading')
        if t is not None:
            t.setprofile(profiler)
        install_thread()

    registry[session] = install_thread
    meta.insert(0, record(b'S', '%d\t%s' % (os.getpid(), sys.version.split('\n')[0])))
    flush()

    # Flushes idle programs every 50 ms, and notices within that time that
    # lptrace is gone even if the program makes no call at all.
    def ticker():
        ticker_ident[0] = get_ident()
        while st['on']:
            time.sleep(0.05)
            try:
                if st.pop('kbd', False):
                    interrupt_main()
                flush()
                if st['on'] and reader_gone():
                    uninstall()
            except BaseException:
                pass
        if st.pop('kbd', False):
            interrupt_main()
    thread_mod.start_new_thread(ticker, ())



if MODE == 'install':
    _lptrace_install(SESSION, FIFO, FIFO_ID)
else:
    import sys as _sys
    _f = getattr(_sys, '__lptrace__', {}).get(SESSION)
    if _f is not None:
        _f()
