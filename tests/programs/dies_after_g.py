# A program whose last Python call is last_words(), right before it dies,
# one of five ways:
#
#   os_exit   os._exit(5): no atexit handler, no flush, exit status 5
#   sigterm   os.kill(os.getpid(), SIGTERM), SIGTERM at its default action
#   sigkill   os.kill(os.getpid(), SIGKILL)
#   segfault  an access to address 0 (faulthandler._sigsegv(), or
#             ctypes.memset(0, 0, 1) where faulthandler lacks it: 2.7)
#   abort     os.abort(): SIGABRT
#
#   dies_after_g.py HOW launch   dies at once
#   dies_after_g.py HOW attach   prints "READY <port>", waits for a client's
#                                line on that port, then dies
#
# Core dumps are off (RLIMIT_CORE 0), so that the tests fill no disk: the
# kernel then reports no "core dumped" for SIGSEGV and SIGABRT (unless
# /proc/sys/kernel/core_pattern pipes cores to a program, which gets them
# whatever the limit).
# Nothing but the death comes after last_words(): it is the last event the
# program records. Python 2.7 and 3.6+.
import os
import resource
import signal
import sys

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
# Whatever the parent left: SIGTERM must kill.
signal.signal(signal.SIGTERM, signal.SIG_DFL)

how = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else 'launch'
if how == 'segfault':
    # Imported now, not after last_words(): an import is many Python calls.
    # Both are C functions, with no Python frame of their own.
    try:
        import faulthandler
        crash, crash_args = faulthandler._sigsegv, ()
    except (ImportError, AttributeError):
        import ctypes
        crash, crash_args = ctypes.memset, (0, 0, 1)
elif how not in ('os_exit', 'sigterm', 'sigkill', 'abort'):
    sys.exit('unknown way of dying: %s' % how)


def last_words():
    return 'goodbye'


def wait_for_the_word():
    import socket
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', 0))
    srv.listen(1)
    sys.stdout.write('READY %d\n' % srv.getsockname()[1])
    sys.stdout.flush()
    conn = srv.accept()[0]
    data = b''
    while not data.endswith(b'\n'):
        chunk = conn.recv(100)
        if not chunk:
            break
        data += chunk


if mode == 'attach':
    wait_for_the_word()
# From here on, nothing but C calls after last_words().
last_words()
if how == 'os_exit':
    os._exit(5)
elif how == 'sigterm':
    os.kill(os.getpid(), signal.SIGTERM)
elif how == 'sigkill':
    os.kill(os.getpid(), signal.SIGKILL)
elif how == 'segfault':
    crash(*crash_args)
elif how == 'abort':
    os.abort()
sys.exit('still alive after %s' % how)
