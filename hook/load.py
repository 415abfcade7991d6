# Stage 0 of the tracing hook: the only code the target compiles at attach.
# _lptrace_parts holds the hook's parts as code objects marshalled by this
# Python version (hook/precompiled/, hex strings; raw bytes on 2.7) and as
# source. The code objects are used only if the interpreter's bytecode
# magic number is the one they were made with: marshal data of another
# bytecode could crash the interpreter. Else the source is compiled here
# (9-14 ms with the GIL held, against 0.3 ms for marshal.loads).


def _lptrace_load(magic, codes, sources):
    import sys
    import marshal

    def raw(s):
        return s if isinstance(s, bytes) else bytes.fromhex(s)

    how = 'compiled'
    # Not in a free-threaded build (abiflags 't'): its bytecode may differ
    # under the same magic number.
    if codes and 't' not in getattr(sys, 'abiflags', ''):
        ext = sys.modules.get('_frozen_importlib_external')
        if ext is not None:
            have = getattr(ext, 'MAGIC_NUMBER', None)
        elif sys.version_info[0] == 2:
            had = 'imp' in sys.modules
            import imp
            have = imp.get_magic()
            if not had:
                sys.modules.pop('imp', None)  # a builtin module: nothing left
        else:
            have = None
        if have is not None and have == raw(magic):
            try:
                codes = [marshal.loads(raw(c)) for c in codes]
                how = 'precompiled'
            except Exception:
                pass
    if how != 'precompiled':
        codes = [compile(s, '<lptrace>', 'exec', 0, 1) for s in sources]
    g = globals()
    del g['_lptrace_parts'], g['_lptrace_load']
    g['LOADED'] = how
    for c in codes:
        exec(c, g)


_lptrace_load(*_lptrace_parts)
