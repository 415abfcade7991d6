# Runs the tracing hook's parts precompiled by this Python version
# (hook/precompiled/; itself one of them). hook.TraceInstall's statement
# has checked the interpreter's bytecode magic number before it loaded this
# code. _lptrace_codes is (address, sizes): the parts' marshal data lies in
# this process's memory at address, where lptrace put it (the mapping that
# holds the statement, gone once it ran), one part after the other in the
# order they run. It is read through /proc/self/mem, which needs no module
# and fails cleanly on a wrong address; a process that may not open it (not
# dumpable, as a server that dropped root is) reads it with ctypes.


def _lptrace_load(addr, sizes):
    import os
    import sys
    import marshal
    total = sum(sizes)
    try:
        fd = os.open('/proc/self/mem', os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0o2000000))
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            if hasattr(os, 'pread'):
                data = os.pread(fd, total, addr)
            else:  # 2.7
                os.lseek(fd, addr, 0)
                data = os.read(fd, total)
        finally:
            os.close(fd)
    else:
        import ctypes
        data = ctypes.string_at(addr, total)
    if len(data) != total:
        return  # lptrace sends the source next
    g = globals()
    del g['_lptrace_codes'], g['_lptrace_load']
    # A free-threaded 3.13 that has started a thread makes the code objects
    # marshal builds immortal: each session would leave its own copy of the
    # hook's code for good. There the first copy stays, in
    # sys.__lptrace_kept__ by its marshal data (see _lptrace_keep in
    # common.py, not loaded yet), and later sessions run it.
    kept = sys.__dict__.get('__lptrace_kept__') or {}
    at = 0
    for n in sizes:
        part = data[at:at + n]
        code = kept.get(part)
        if code is None:
            code = marshal.loads(part)
            if sys.getrefcount(code) >= 1 << 30:
                sys.__dict__.setdefault('__lptrace_kept__', {})[part] = code
        exec(code, g)
        at += n


_lptrace_load(*_lptrace_codes)
