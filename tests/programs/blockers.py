# One thread blocked in each way the standard library blocks (Python 2.7
# and 3.6+), for the audit of the system calls where lptrace may run code:
# prints "BLOCKS <name> <thread id>" for each, then "READY 0".
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import queue
except ImportError:
    import Queue as queue


def native_id():
    get = getattr(threading, 'get_native_id', None)
    if get is not None:
        return get()
    import ctypes
    return ctypes.CDLL(None).syscall(186)  # gettid, x86-64


started = []
lock = threading.Lock()
started_lock = threading.Lock()


def blocker(name):
    def wrap(f):
        def run():
            with started_lock:
                started.append((name, native_id()))
            f()
        t = threading.Thread(target=run, name=name)
        t.daemon = True
        t.start()
        return f
    return wrap


srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(1)
peer = socket.create_connection(srv.getsockname())
mine, _ = srv.accept()
r, w = os.pipe()
child = subprocess.Popen(['sleep', '1000'])
lock.acquire()
q = queue.Queue()
ev = threading.Event()
cond = threading.Condition()
lockfile = tempfile.TemporaryFile()
holder_r, holder_w = os.pipe()
holder = os.fork()
if holder == 0:
    import fcntl
    fcntl.lockf(lockfile, fcntl.LOCK_EX)
    os.write(holder_w, b'x')
    time.sleep(1000)
    os._exit(0)
os.read(holder_r, 1)  # the lock is held by the child

blocker('sleep')(lambda: time.sleep(1000))
blocker('accept')(lambda: srv.accept())
blocker('recv')(lambda: mine.recv(10))
blocker('read')(lambda: os.read(r, 10))
blocker('select')(lambda: select.select([r], [], [], 1000))
if hasattr(select, 'poll'):
    p = select.poll()
    p.register(r, select.POLLIN)
    blocker('poll')(lambda: p.poll(1000000))
ep = select.epoll()
ep.register(r, select.EPOLLIN)
blocker('epoll')(lambda: ep.poll(1000))
blocker('epoll_forever')(lambda: ep.poll())
blocker('lock')(lambda: lock.acquire())
blocker('lock_timeout')(lambda: lock.acquire(True, 1000) if sys.version_info[0] > 2 else lock.acquire())
blocker('queue')(lambda: q.get())
blocker('event')(lambda: ev.wait(1000))
blocker('wait')(lambda: child.wait())


def cond_wait():
    with cond:
        cond.wait()


blocker('condition')(cond_wait)


def lockf():
    import fcntl
    fcntl.lockf(lockfile, fcntl.LOCK_EX)


blocker('lockf')(lockf)
if hasattr(signal, 'sigtimedwait'):
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    blocker('sigtimedwait')(lambda: signal.sigtimedwait([signal.SIGUSR2], 1000))
if sys.version_info >= (3, 0):
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ)
    blocker('selector')(lambda: sel.select())

time.sleep(0.5)
with started_lock:
    for name, tid in started:
        sys.stdout.write('BLOCKS %s %d\n' % (name, tid))
sys.stdout.write('READY 0\n')
sys.stdout.flush()
try:
    while True:
        time.sleep(1)
finally:
    child.kill()
    os.kill(holder, signal.SIGKILL)
