# Runs the tracing hook's parts precompiled by this Python version
# (hook/precompiled/; itself one of them). hook.TraceInstall's statement
# has checked the interpreter's bytecode magic number before it loaded this
# code: the parts come as marshal data in _lptrace_codes (hex strings;
# str literals, that is bytes, on 2.7), in the order they run.


def _lptrace_load(codes):
    import marshal
    g = globals()
    del g['_lptrace_codes'], g['_lptrace_load']
    for c in codes:
        exec(marshal.loads(c if isinstance(c, bytes) else bytes.fromhex(c)), g)


_lptrace_load(_lptrace_codes)
