# Shared by lptrace's payloads (prepended to exec.py and trace.py).

def _lptrace_open_fifo(fifo, fifo_id, reading=False):
    """Opens lptrace's FIFO for writing, never blocking (or for reading,
    blocking, when reading), and only if it is the very FIFO lptrace made
    (device, inode, owner, change time): a FIFO planted at the same path
    after lptrace removed its own gets nothing. Removes the path at once.
    Returns the descriptor, or -1 (then run nothing)."""
    import os
    import stat
    mode = os.O_RDONLY if reading else os.O_WRONLY
    flags = mode | os.O_NONBLOCK | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(fifo, flags)
    except OSError:
        fd = -1
    if fd >= 0:
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
            os.close(fd)
            return -1
    for remove, p in ((os.unlink, fifo), (os.rmdir, os.path.dirname(fifo))):
        try:
            remove(p)
        except OSError:
            pass
    return fd


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
    import signal
    try:
        if signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN:
            return lambda f, *a: f(*a)
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        block = ctypes.create_string_buffer(128)
        libc.sigemptyset(block)
        libc.sigaddset(block, signal.SIGPIPE)
        zero = ctypes.create_string_buffer(16)
    except Exception:
        return lambda f, *a: f(*a)

    def guarded(f, *a):
        old = ctypes.create_string_buffer(128)
        libc.pthread_sigmask(0, block, old)
        try:
            return f(*a)
        finally:
            pending = ctypes.create_string_buffer(128)
            if libc.sigpending(pending) == 0 and libc.sigismember(pending, signal.SIGPIPE) == 1:
                libc.sigtimedwait(block, None, zero)
            libc.pthread_sigmask(2, old, None)
    return guarded


def _lptrace_repr(limit, verbose):
    """Returns repr(v) for lptrace's values: it never raises, never blocks,
    and runs no code of the program unless verbose: objects other than
    builtins and containers of them show as <Class at 0x...>. At most limit
    characters, then '...'."""
    import sys
    try:
        text_types = (str, unicode, bytes)
        int_types = (int, long, bool, float, complex, type(None))
    except NameError:
        text_types = (str, bytes, bytearray)
        int_types = (int, bool, float, complex, type(None))
    containers = (list, tuple, set, frozenset, dict)
    budget = max(limit, 1)

    def one(v, depth):
        t = type(v)
        if t in text_types:
            r = repr(v[:budget])
            return r if len(v) <= budget else r + '...'
        if t in int_types:
            if t in int_types[:2] and abs(v) >> 512:
                return '<int of %d bits>' % v.bit_length()
            return repr(v)
        if t in containers:
            if depth > 2:
                return '[...]' if t is list else '(...)'
            items = v.items() if t is dict else v
            parts, size = [], 0
            for i, x in enumerate(items):
                if size > budget or i >= 16:
                    parts.append('...')
                    break
                if t is dict:
                    s = one(x[0], depth + 1) + ': ' + one(x[1], depth + 1)
                else:
                    s = one(x, depth + 1)
                parts.append(s)
                size += len(s) + 2
            body = ', '.join(parts)
            if t is list:
                return '[' + body + ']'
            if t is tuple:
                return '(' + body + (',)' if len(parts) == 1 else ')')
            if t is dict:
                return '{' + body + '}'
            if not parts:
                return t.__name__ + '()'
            return (t.__name__ + '({' + body + '})') if t is frozenset else '{' + body + '}'
        if verbose:
            return repr(v)
        try:
            name = t.__name__
            if name == 'instance':  # 2.7's old-style classes (no code runs)
                name = v.__class__.__name__
        except Exception:
            name = '?'
        return '<%s at 0x%x>' % (name, id(v))

    most = max(4 * budget, 128)

    def safe(v):
        # Text is cut at limit characters (strace's -s); other values, made
        # of many parts, at a few times that.
        try:
            r = one(v, 0)
            return r if len(r) <= most else r[:most] + '...'
        except BaseException:
            return '<?>'
    return safe
