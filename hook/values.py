# lptrace's safe repr of values (prepended to payloads that show values).


def _lptrace_repr(limit, verbose):
    """Returns repr(v) for lptrace's values: it never raises, never blocks,
    and runs no code of the program unless verbose: objects other than
    builtins and containers of them show as <Class at 0x...>. At most limit
    characters, then '...'."""
    # Kinds by the identity of the exact type: comparing types with == or
    # `in` would run a metaclass's __eq__ (program code).
    try:
        import builtins
    except ImportError:
        import __builtin__ as builtins
    kinds = {}
    for kind, types in (('text', ('str', 'unicode', 'bytes', 'bytearray')),
                        ('int', ('int', 'long', 'bool')),
                        ('number', ('float', 'complex', 'NoneType')),
                        ('container', ('list', 'tuple', 'set', 'frozenset', 'dict'))):
        for name in types:
            t = type(None) if name == 'NoneType' else getattr(builtins, name, None)
            if t is not None:
                kinds[id(t)] = kind
    type_name = type.__dict__['__name__'].__get__
    raised_by_program = _lptrace_raised_by_program  # bound: globals may be cleared  # not the metaclass's __getattribute__
    budget = max(limit, 1)

    def one(v, depth):
        t = type(v)
        kind = kinds.get(id(t))
        if kind == 'text':
            r = repr(v[:budget])
            return r if len(v) <= budget else r + '...'
        if kind == 'int' and abs(v) >> 512:
            return '<int of %d bits>' % v.bit_length()
        if kind == 'int' or kind == 'number':
            return repr(v)
        if kind == 'container':
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
                return type_name(t) + '()'
            return (type_name(t) + '({' + body + '})') if t is frozenset else '{' + body + '}'
        if verbose:
            return repr(v)
        try:
            name = type_name(t)
            if name == 'instance':  # 2.7's old-style classes (no code runs)
                name = v.__class__.__name__
        except Exception:
            if raised_by_program():
                raise
            name = '?'
        return '<%s at 0x%x>' % (name, id(v))

    most = max(4 * budget, 128)

    def plain(t):
        # The name objects of type T show with (<Name at 0x...>), or None
        # if they show otherwise.
        if verbose or id(t) in kinds:
            return None
        try:
            name = type_name(t)
        except Exception:
            if raised_by_program():
                raise
            return None
        return None if name == 'instance' else name

    def safe(v):
        # Text is cut at limit characters (strace's -s); other values, made
        # of many parts, at a few times that.
        try:
            r = one(v, 0)
            return r if len(r) <= most else r[:most] + '...'
        except Exception:
            # Without -v no code of the program runs here, except a signal
            # handler of its own: what that raises is the program's.
            if not verbose and raised_by_program():
                raise
            return '<?>'
    safe.plain = plain
    return safe


def _lptrace_exc_text(exc, srepr):
    # ValueError('bad') without calling the exception's own __repr__.
    if exc is None:
        return '<exception>'  # Python < 3.12: a profiler cannot see which
    try:
        args = BaseException.args.__get__(exc)
        return '%s(%s)' % (type(exc).__name__, ', '.join(srepr(a) for a in args))
    except BaseException:
        if _lptrace_raised_by_program():
            raise
        return '?'
