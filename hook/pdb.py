# lptrace's pdb session. It runs in the chosen thread of the target, with
# FIFO/FIFO_ID (target -> lptrace) and IN/IN_ID (lptrace -> target) in its
# globals. pdb reads its commands from IN and writes to FIFO: the target's
# own stdin and stdout are never touched, so a daemon without a terminal
# works. Quitting, Ctrl-D, or lptrace going away all mean "continue": the
# trace function leaves and the program runs on.
#
# Records (kind byte, 4-byte little-endian length, data):
#   S  started: "pid<TAB>thread name<TAB>file:line of the frame pdb stops in"
#   O  text pdb printed
#   R  pdb waits for a command line
#   X  the session is over (the program runs on untraced)
#   E  the session could not start: why


def _lptrace_pdb(fifo, fifo_id, fin, fin_id):
    import os
    import sys
    import struct
    import select
    import errno
    out = _lptrace_open_fifo(fifo, fifo_id)
    if out < 0:
        return
    inp = _lptrace_open_fifo(fin, fin_id, reading=True)
    if inp < 0:
        os.close(out)
        return
    sigpipe = _lptrace_sigpipe_guard()
    st = {'open': True, 'buf': b''}

    def close():
        if st['open']:
            st['open'] = False
            for fd in (out, inp):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def send(kind, text):
        if not st['open']:
            return
        if not isinstance(text, bytes):
            text = text.encode('utf-8', 'replace')
        data = kind + struct.pack('<I', len(text)) + text
        try:
            while data:
                try:
                    n = sigpipe(os.write, out, data)
                    data = data[n:]
                except OSError as e:
                    if e.errno != errno.EAGAIN:
                        raise
                    # lptrace reads slowly: wait a little, never forever.
                    if not (_lptrace_original(select, 'select') or select.select)([], [out], [], 5)[1]:
                        raise
        except Exception:
            close()  # lptrace is gone: the session ends as if continued

    class Output(object):
        def write(self, s):
            send(b'O', s)

        def flush(self):
            pass

    class Input(object):
        def readline(self):
            send(b'R', '')
            while st['open'] and b'\n' not in st['buf']:
                try:
                    chunk = os.read(inp, 4096)
                except OSError as e:
                    if e.errno == errno.EINTR:
                        continue
                    chunk = b''
                if not chunk:
                    close()
                    break
                st['buf'] += chunk
            line, sep, st['buf'] = st['buf'].partition(b'\n')
            if not sep and not line:
                return ''  # end of input: pdb's EOF command
            return (line + b'\n').decode('utf-8', 'replace')

    # The program's frame: below our code, and below the module frame of
    # the wrapper that PyRun_SimpleString ran ("<string>").
    frame = sys._getframe()
    while frame is not None and frame.f_code.co_filename == '<lptrace>':
        frame = frame.f_back
    if frame is not None and frame.f_code.co_filename == '<string>' and frame.f_code.co_name == '<module>':
        frame = frame.f_back
    if frame is None:
        send(b'E', 'the thread is not running Python code (no Python frame below the injected call)')
        close()
        return
    import pdb
    import threading
    try:
        from _thread import get_ident as threading_ident
    except ImportError:
        from thread import get_ident as threading_ident

    # What the program had: its own trace function in this thread and on
    # its frames (coverage, another debugger) comes back when we leave.
    prev_trace = sys.gettrace()
    prev_frames = []
    f = frame
    while f is not None:
        prev_frames.append((f, f.f_trace))
        f = f.f_back

    class Session(pdb.Pdb):
        def leave(self):
            # As `continue` with no breakpoint: no trace function of ours
            # left in this thread or its frames, the program's put back.
            if st.get('left'):
                return
            st['left'] = True
            self.clear_all_breaks()
            self.set_continue()
            sys.settrace(prev_trace)
            for f, t in prev_frames:
                f.f_trace = t
            send(b'X', '')
            close()

        def trace_dispatch(self, frame, event, arg):
            # lptrace went away while the program ran on with breakpoints
            # set: leave at the thread's next event, in the thread itself.
            if st.get('gone'):
                self.leave()
                return prev_trace
            return pdb.Pdb.trace_dispatch(self, frame, event, arg)

        def do_quit(self, arg):
            self.leave()
            return 1
        do_q = do_exit = do_EOF = do_quit

        def do_continue(self, arg):
            if self.breaks:
                return pdb.Pdb.do_continue(self, arg)
            self.leave()
            return 1
        do_c = do_cont = do_continue

        def do_detach(self, arg):
            """detach: end the session (the program runs on)."""
            return self.do_quit(arg)

    def watch():
        # The end of lptrace (all writers of the command FIFO gone) shows as
        # POLLHUP, without reading what pdb will read.
        try:
            p = (_lptrace_original(select, 'poll') or select.poll)()
            p.register(inp, select.POLLHUP)
            while st['open'] and not st.get('left'):
                if p.poll(500):
                    st['gone'] = True
                    return
        except Exception:
            st['gone'] = True
    # nosigint: pdb must not take over the program's SIGINT handler.
    s = None
    for extra in ({'nosigint': True, 'backend': 'settrace'}, {'nosigint': True}, {}):
        try:
            s = Session(stdin=Input(), stdout=Output(), **extra)
            break
        except TypeError:
            pass  # an older pdb
    s.use_rawinput = False
    s.prompt = ''  # lptrace shows its own
    try:
        name = threading._active[threading_ident()].name
    except Exception:
        name = ''
    send(b'S', '%d\t%s\t%s:%d' % (os.getpid(), name, frame.f_code.co_filename, frame.f_lineno))
    try:
        import _thread as thread_mod
    except ImportError:
        import thread as thread_mod
    _lptrace_thread_starter()(watch, ())
    # The last statement of the payload: from here on the thread stops at
    # the next line of the program's own frames.
    s.set_trace(frame)


_lptrace_pdb(FIFO, FIFO_ID, IN, IN_ID)
