# lptrace's `exec` payload. It runs inside the target process, from
# PyRun_SimpleString, in a globals dict of its own that holds FIFO (the path
# of lptrace's pipe as the target sees it) and CODE (the user's code, base64).
# It must work on Python 2.7 and 3.6+, must never raise into the target, must
# never block it for long, and must leave nothing behind.
#
# Records sent to lptrace: one kind byte, a 4-byte little-endian length, data.
#   S  started: "pid<TAB>thread<TAB>sys.version"
#   O  stdout text written by the code     E  stderr text, tracebacks
#   X  finished: "0" (ok) or "1" (the code raised)



def _lptrace_exec(fifo, fifo_id, code_b64):
    # The pipe is closed whatever happens, a signal handler of the program
    # raising between its opening and the try below included.
    import os
    held = {}
    try:
        _lptrace_exec_in(fifo, fifo_id, code_b64, held)
    finally:
        if 'fd' in held:
            os.close(held.pop('fd'))


def _lptrace_exec_in(fifo, fifo_id, code_b64, held):
    import os
    import sys
    import errno
    import struct
    import binascii
    import time

    # The interpreter's own (not gevent's, which names greenlets).
    get_ident = (_lptrace_thread_functions() or (0, 0, None))[2]
    if get_ident is None:
        try:
            from _thread import get_ident
        except ImportError:
            from thread import get_ident

    fd = _lptrace_open_fifo(fifo, fifo_id, sink=held)
    if fd < 0:
        return  # lptrace is gone: run nothing

    clock = getattr(time, 'monotonic', time.time)
    sleep = _lptrace_original(time, 'sleep') or time.sleep
    guard = _lptrace_sigpipe_guard()

    class Gone(Exception):
        pass

    def send(kind, data):
        if not isinstance(data, bytes):
            data = data.encode('utf-8', 'replace')
        buf = kind + struct.pack('<I', len(data)) + data
        deadline = clock() + 10.0
        while buf:
            try:
                n = guard(os.write, fd, buf)
                buf = buf[n:]
            except OSError as e:
                if e.errno != errno.EAGAIN or clock() > deadline:
                    raise Gone()
                sleep(0.002)

    me = get_ident()

    class Capture(object):
        """Stands in for sys.stdout/sys.stderr: what this thread writes goes
        to lptrace, what the program's other threads write goes where it
        always went."""

        def __init__(self, orig, kind):
            self.__dict__['_orig'] = orig
            self.__dict__['_kind'] = kind

        def write(self, s):
            if get_ident() == me:
                send(self._kind, s)
                return len(s)
            if self._orig is None:
                return len(s)
            return self._orig.write(s)

        def writelines(self, lines):
            for line in lines:
                self.write(line)

        def flush(self):
            if get_ident() != me and self._orig is not None:
                return self._orig.flush()

        def isatty(self):
            return False

        def __getattr__(self, name):
            return getattr(self._orig, name)

        def __setattr__(self, name, value):
            if get_ident() == me or self._orig is None:
                self.__dict__[name] = value
            else:
                setattr(self._orig, name, value)

    out, err = sys.stdout, sys.stderr
    cap_out, cap_err = Capture(out, b'O'), Capture(err, b'E')
    status = b'0'
    try:
        try:
            send(b'S', '%d\t%d\t%s' % (os.getpid(), me, sys.version.split('\n')[0]))
            sys.stdout, sys.stderr = cap_out, cap_err
            import __main__
            ns = dict(vars(__main__))
            ns['__name__'] = '__lptrace__'
            src = binascii.a2b_base64(code_b64)
            # Like the interactive interpreter, show the value of a final
            # expression: split it off the syntax tree (PyCF_ONLY_AST).
            tree = compile(src, '<lptrace>', 'exec', 0x400, True)
            last = None
            if tree.body and type(tree.body[-1]).__name__ == 'Expr':
                last = tree.body.pop()
            # lptrace runs this payload with the thread marked as tracing
            # (the program's tracers, profilers and sys.monitoring tools
            # see none of it); the user's code runs unmarked, as the
            # program's own would (cProfile, pdb, a trace function of its
            # own work there; the program's tools see it, as '<lptrace>').
            untraced = getattr(sys, 'call_tracing', None) or (lambda f, a: f(*a))
            # 3.11+: the code runs with the recursion limit raised by 100
            # (see inject.Headroom: in a thread near its limit, its own
            # calls need the room), which lptrace lowers again afterwards:
            # a limit the code sets is raised by as much, so that it stays.
            # (Before, the thread's depth counter is lowered instead.)
            limit = sys.getrecursionlimit() if sys.version_info >= (3, 11) else None
            try:
                # (eval runs a code object of any mode, on 2.7 too: no frame of
                # ours between the user's code and its caller.)
                untraced(eval, (compile(tree, '<lptrace>', 'exec', 0, True), ns))
                if last is not None:
                    import _ast
                    value = untraced(eval, (compile(_ast.Expression(last.value), '<lptrace>', 'eval', 0, True), ns))
                    if value is not None:
                        send(b'O', repr(value) + '\n')
            finally:
                if limit is not None and sys.getrecursionlimit() != limit:
                    sys.setrecursionlimit(sys.getrecursionlimit() + 100)
        except Gone:
            raise
        except BaseException:
            status = b'1'
            typ, e, tb = sys.exc_info()
            import traceback
            if isinstance(e, SyntaxError):
                text = traceback.format_exception_only(typ, e)
            else:
                text = traceback.format_exception(typ, e, tb.tb_next)  # without this payload's frame
            # The user's code is compiled as '<lptrace>' (traces leave it
            # out); the user knows it as what lptrace exec ran.
            send(b'E', ''.join(text).replace('File "<lptrace>"', 'File "<exec>"'))
            del tb
            if isinstance(e, KeyboardInterrupt) and get_ident() == getattr(_main_ident, 'value', None):
                status = b'1K'  # maybe the program's Ctrl-C: lptrace hands it back
        finally:
            if sys.stdout is cap_out:
                sys.stdout = out
            if sys.stderr is cap_err:
                sys.stderr = err
        send(b'X', status)
    except Gone:
        pass


class _main_ident(object):
    value = None


_main_ident.value = _lptrace_main_ident()
_lptrace_exec(FIFO, FIFO_ID, CODE)
