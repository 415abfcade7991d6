# A program with tracers of its own: a trace function and a profile
# function in every thread (sys.settrace/setprofile, threading's hooks for
# the threads it starts), and on 3.12+ a sys.monitoring tool of its own
# (PY_START). Each records the code it sees. A busy thread calls work() in
# a loop, an idle one sleeps; a server thread answers lines:
#   seen    the code seen since the last "seen" (file:name, sorted, ;-separated)
#   count   how many events the tracers got so far (they keep working)
#   state   the fingerprint (see fingerprint.py)
# Python 2.7 and 3.6+.
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fingerprint  # noqa: E402

seen = set()
events = [0]


def note(code):
    # No lock: the tracers would run inside its acquire (2.7's RLock is
    # Python code); set.add is atomic.
    seen.add('%s:%s' % (code.co_filename, code.co_name))
    events[0] += 1


def tracer(frame, what, arg):
    note(frame.f_code)
    return tracer


def profiler(frame, what, arg):
    note(frame.f_code)


mon = getattr(sys, 'monitoring', None)
if mon is not None:
    mon.use_tool_id(3, 'program')  # (lptrace takes another)
    mon.register_callback(3, mon.events.PY_START, lambda code, offset: note(code))
    mon.set_events(3, mon.events.PY_START)


def work(n):
    return n * 2


def busy():
    while True:
        work(1)
        time.sleep(0.001)


def idle():
    while True:
        time.sleep(0.05)


def serve(srv):
    while True:
        c, _ = srv.accept()
        f = c.makefile('rb')
        while True:  # (not `for line in f`: 2.7 reads ahead)
            line = f.readline()
            if not line:
                break
            line = line.decode().strip()
            if line == 'seen':
                got = list(seen)
                for s in got:
                    seen.discard(s)
                out = ';'.join(sorted(got))
            elif line == 'count':
                out = str(events[0])
            else:
                out = fingerprint.take()
            c.sendall((out + '\n').encode())
        c.close()


threading.settrace(tracer)
threading.setprofile(profiler)
sys.settrace(tracer)
sys.setprofile(profiler)
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(4)
for name, f, args in (('busy', busy, ()), ('idle', idle, ()), ('server', serve, (srv,))):
    t = threading.Thread(target=f, args=args, name=name)
    t.daemon = True
    t.start()
sys.stdout.write('READY %d\n' % srv.getsockname()[1])
sys.stdout.flush()
while True:
    work(2)
    time.sleep(0.01)
