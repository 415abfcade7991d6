# Compiles the tracing hook's parts with the interpreter that runs this
# script, into one file of hook/precompiled/ (see precompile.sh). The hook
# then loads them with marshal in the target instead of compiling its
# source there: about 0.3 ms instead of 9-14 ms, while the target holds the
# GIL. The target uses them only when its own bytecode magic number is the
# one written here, and lptrace only when each part's checksum (CRC-32:
# it guards against a stale file, not an adversary; quick to check, some
# 10 microseconds for all parts) is that of the source it embeds.
#
#   python precompile.py OUT PART...
#
# OUT: "lptrace precompiled 2", "python X.Y VERSION", "magic HEX", then per
# part a line "part NAME CRC32 LENGTH", LENGTH bytes of marshal data and a
# newline. Python 2.7 and 3.6+.
import marshal
import os
import sys
import zlib


def magic_number():
    if sys.version_info[0] == 2:
        import imp
        return imp.get_magic()
    import importlib.util
    return importlib.util.MAGIC_NUMBER


def crc32(data):
    return '%08x' % (zlib.crc32(data) & 0xffffffff)


def nested(code):
    """3.13: every code object but the part's own marked CO_NESTED, which
    changes nothing but this: on a free-threaded 3.13, once the program has
    started a thread, a function whose code is not CO_NESTED (a def or class
    body at a part's top level, a method of a top-level class) is made
    immortal, and with it the part's globals, which hold all of a session.
    A nested function is freed as on any build. (3.14 frees them all.)"""
    if sys.version_info[:2] != (3, 13):
        return code
    return walk(code, False)


def walk(code, flag):
    consts = tuple(walk(c, True) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_consts=consts, co_flags=code.co_flags | (0x10 if flag else 0))


def main(out, parts):
    data = [b'lptrace precompiled 2\n',
            ('python %d.%d %s\n' % (sys.version_info[0], sys.version_info[1], sys.version.split()[0])).encode('ascii'),
            ('magic %s\n' % ''.join('%02x' % c for c in bytearray(magic_number()))).encode('ascii')]
    for path in parts:
        with open(path, 'rb') as f:
            src = f.read()
        # The target compiles the same bytes the same way when it cannot use
        # these (hook.TraceInstall): flags 0, dont_inherit.
        code = marshal.dumps(nested(compile(src, '<lptrace>', 'exec', 0, 1)))
        data.append(('part %s %s %d\n' % (os.path.basename(path), crc32(src), len(code))).encode('ascii'))
        data.append(code + b'\n')
    with open(out, 'wb') as f:
        f.write(b''.join(data))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
