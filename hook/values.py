# lptrace's safe repr of values (prepended to payloads that show values).


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


def _lptrace_exc_text(exc, srepr):
    # ValueError('bad') without calling the exception's own __repr__.
    if exc is None:
        return '<exception>'  # Python < 3.12: a profiler cannot see which
    try:
        args = BaseException.args.__get__(exc)
        return '%s(%s)' % (type(exc).__name__, ', '.join(srepr(a) for a in args))
    except BaseException:
        return '?'
