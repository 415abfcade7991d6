# The verdict of lptrace's -e and --no-stdlib options (prepended to the
# tracing hook when they are given).


def _lptrace_filter(filters, nostdlib):
    """Returns wanted(name, qualname, module, file): the verdict of lptrace's
    -e patterns (globs; a '!' pattern excludes; with any positive pattern, a
    function must match one) and of --no-stdlib."""
    import os
    import sys
    if filters:
        # Compiled now, matched by the regex objects' own methods: nothing
        # in a call depends on a module's globals, which 2.7 sets to None
        # while it shuts down, when our profile function still runs (a
        # TypeError there broke the program's weakref callbacks).
        import re
        from fnmatch import translate
    prefixes = []
    if nostdlib:
        try:
            import sysconfig
            paths = sysconfig.get_paths()
            prefixes = [paths[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib') if k in paths]
        except Exception:
            pass
        prefixes.append(os.path.dirname(os.__file__))
        prefixes += [p for p in sys.path if p and ('site-packages' in p or 'dist-packages' in p)]
        prefixes = tuple(set(os.path.join(os.path.realpath(p), '') for p in prefixes) |
                         set(os.path.join(p, '') for p in prefixes))
    rules = []
    for neg, pat in filters:
        rules.append((neg, re.compile(translate(pat)).match, '/' in pat))
    has_positive = any(not neg for neg, _, _ in rules)

    def wanted(name, qualname, module, filename):
        if nostdlib and (filename.startswith(prefixes) or filename.startswith('<frozen')):
            return False
        if not rules:
            return True
        full = module + '.' + qualname if module else qualname
        hit_positive = False
        for neg, match, is_path in rules:
            try:
                if is_path:
                    hit = match(filename) is not None
                else:
                    hit = (match(full) is not None or match(qualname) is not None or
                           match(name) is not None or (module != '' and match(module) is not None))
            except Exception:
                if _lptrace_raised_by_program():
                    raise
                hit = False
            if hit:
                if neg:
                    return False
                hit_positive = True
        return hit_positive or not has_positive
    return wanted
