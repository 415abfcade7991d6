# What a program must find unchanged after lptrace looked at it, as one
# line: its threads, each one's trace and profile functions, its
# sys.monitoring tools, switch interval, recursion limit, signal handlers,
# and anything lptrace keeps in sys. Python 2.7 and 3.6+.
import signal
import sys
import threading


def take():
    parts = []
    for t in sorted(threading.enumerate(), key=lambda t: t.name):
        parts.append('thread=%s' % t.name)
    parts.append('trace=%r' % (sys.gettrace(),))
    parts.append('profile=%r' % (sys.getprofile(),))
    if hasattr(sys, 'getswitchinterval'):
        parts.append('switch=%r' % sys.getswitchinterval())
    parts.append('recursion=%d' % sys.getrecursionlimit())
    mon = getattr(sys, 'monitoring', None)
    if mon is not None:
        parts.append('tools=%r' % [mon.get_tool(i) for i in range(6)])
    for name in ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGPIPE', 'SIGCHLD', 'SIGURG', 'SIGALRM'):
        h = signal.getsignal(getattr(signal, name))
        parts.append('%s=%s' % (name, getattr(h, '__name__', h)))
    parts.append('lptrace=%r' % ('__lptrace__' in sys.__dict__))
    return ' '.join(parts)
