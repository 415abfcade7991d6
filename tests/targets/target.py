# A Python program for lptrace's tests, in the states that matter. Works on
# Python 2.7 and 3.6+. Prints "READY <port>" once set up, then "tick <n>"
# every 100 ms from its heartbeat, so that tests can check that it keeps its
# pace while lptrace works on it.
#
#   target.py MODE   with MODE one of:
#     sleep    main thread in time.sleep, heartbeat from it
#     accept   main thread blocked in accept() of a server answering "pong"
#     cpu      main thread in a pure-Python loop (no blocking call at all)
#     threads  8 worker threads (sleeping, computing, waiting on a queue),
#              main thread in join()
#     lock     a thread blocked on a Lock held by the main thread
#     sigpipe  SIGPIPE set to SIG_DFL, then as sleep
#     sigint   catches KeyboardInterrupt and goes on, printing "caught"
#     sigintbusy  the same, computing instead of sleeping
#     fork     forks a child running child_work() for 1 s on SIGUSR2
#     http     an HTTP server (http.server / SimpleHTTPServer) on 127.0.0.1
#     rate     a call loop printing "rate <calls per second>" every 0.2 s
#     gilheld  the main thread sleeps in C with the GIL held (ctypes.PyDLL),
#              so no thread can run Python for a while
#     load     worker threads doing CPU work, file and socket I/O, sleeps,
#              lock waits and subprocess spawns, each checking its own
#              results (STATE['errors'] counts what went wrong); READY
#              once every worker has begun
#     ender    like threads (fewer workers); SIGUSR1 makes it exit (os._exit),
#              SIGUSR2 exec /bin/sleep 30; core dumps are off, so a SIGSEGV
#              sent to it is a plain crash
#     recursion  hits the recursion limit every 50 ms and catches the error
#     spinner  a thread computing without ever blocking; the main thread sleeps
#     owners   4 threads named w0..w3, each calling shared_call() 50 times,
#              then its own function owned_by_wK(), and sleeping 0.5 ms,
#              with a GIL switch interval of 20 us: threads take turns
#              mid-loop
#     calls    every 50 ms a known call tree: app_outer -> app_inner (returns),
#              app_fail (raises ValueError, caught), app_gen (a generator);
#              on SIGUSR2 it forks a child that runs app_child_work
import os
import signal
import socket
import sys
import threading
import time

MODE = sys.argv[1]
STATE = {'mode': MODE, 'ticks': 0, 'errors': 0}


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def heartbeat_step(last=[0.0]):
    now = time.time()
    if now - last[0] >= 0.1:
        last[0] = now
        STATE['ticks'] += 1
        out('tick %d' % STATE['ticks'])


def heartbeat_thread():
    while True:
        heartbeat_step()
        time.sleep(0.02)


def daemon(f, name=None):
    """Starts f in a daemon thread."""
    t = threading.Thread(target=f, name=name)
    t.daemon = True
    t.start()
    return t


def heartbeat_forever():
    while True:
        heartbeat_step()
        time.sleep(0.02)


def sleeper_tick():
    time.sleep(0.05)


def waiter_tick(q):
    try:
        q.get(timeout=0.05)
    except Exception:
        pass


def late_tick():
    time.sleep(0.02)


def late_worker():
    while True:
        late_tick()


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Thing(object):
    def __repr__(self):
        STATE['repr_called'] = True  # lptrace must not call this unless -v
        return 'Thing!'


def app_inner(x, label='s', *rest, **kw):
    time.sleep(0.002)
    return x * 2


def app_fail(why):
    raise ValueError(why)


def app_gen(n):
    for i in range(n):
        yield i


def app_outer(n):
    os.path.join('a', 'b')  # a function of the standard library
    total = app_inner(n, label='lbl', thing=Thing())
    try:
        app_fail('bad')
    except ValueError:
        pass
    return total + sum(app_gen(2))


def app_child_work():
    time.sleep(0.01)


def fork_child(work):
    # A child that calls work() for 1 s, then exits.
    if os.fork() == 0:
        end = time.time() + 1.0
        while time.time() < end:
            work()
        os._exit(0)


def shared_call():
    return 0


def owned_by_w0():
    return 0


def owned_by_w1():
    return 1


def owned_by_w2():
    return 2


def owned_by_w3():
    return 3


def tiny(x):
    return x


def on_usr1(signum, frame):
    STATE['usr1'] = STATE.get('usr1', 0) + 1


def main():
    port = 0
    signal.signal(signal.SIGUSR1, on_usr1)
    if MODE == 'sigpipe':
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if MODE in ('sleep', 'sigpipe'):
        out('READY 0')
        while True:
            heartbeat_step()
            time.sleep(0.02)
    elif MODE == 'accept':
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', 0))
        srv.listen(16)
        port = srv.getsockname()[1]
        daemon(heartbeat_thread)
        out('READY %d' % port)
        while True:
            conn, _ = srv.accept()
            conn.sendall(b'pong\n')
            conn.close()
    elif MODE == 'owners':
        if hasattr(sys, 'setswitchinterval'):
            sys.setswitchinterval(0.00002)
        else:
            sys.setcheckinterval(20)  # 2.7: a switch every 20 instructions at most

        def owner(own):
            # Runnable nearly always, at a modest rate of events: some work
            # without calls between two calls.
            while True:
                for _ in range(50):
                    shared_call()
                    for _ in range(500):
                        pass
                own()
                time.sleep(0.0005)  # where lptrace hooks it, before 3.12
        for k, own in enumerate((owned_by_w0, owned_by_w1, owned_by_w2, owned_by_w3)):
            daemon(lambda own=own: owner(own), 'w%d' % k)
        out('READY 0')
        heartbeat_forever()
    elif MODE == 'cpu':
        out('READY 0')
        while True:
            fib(12)
            heartbeat_step()
    elif MODE == 'threads':
        try:
            import queue
        except ImportError:
            import Queue as queue
        q = queue.Queue()

        def sleeper():
            while True:
                sleeper_tick()

        def worker():
            while True:
                fib(15)
                time.sleep(0.001)

        def waiter():
            while True:
                waiter_tick(q)

        threads = [threading.Thread(target=heartbeat_thread)]
        threads += [threading.Thread(target=f) for f in (sleeper, sleeper, sleeper, worker, worker, waiter, waiter)]
        for t in threads:
            t.daemon = True
            t.start()
        out('READY 0')
        while True:
            threads[0].join(3600)
    elif MODE == 'recursion':
        def deeper(n, path=[['a', 1], ('b', 2.0)]):
            return deeper(n + 1, path)
        too_deep = getattr(__builtins__, 'RecursionError', RuntimeError)
        out('READY 0')
        while True:
            try:
                deeper(0)
            except too_deep:
                pass
            heartbeat_step()
            time.sleep(0.05)
    elif MODE == 'spinner':
        def spin():
            while True:
                fib(10)
        daemon(spin, 'spinner')
        out('READY 0')
        heartbeat_forever()
    elif MODE == 'ender':
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGUSR1, lambda s, f: os._exit(3))
        signal.signal(signal.SIGUSR2, lambda s, f: os.execv('/bin/sleep', ['sleep', '30']))

        def worker():
            while True:
                fib(12)
                time.sleep(0.002)
        for f in (heartbeat_thread, worker, worker, worker):
            daemon(f)
        out('READY 0')
        while True:
            time.sleep(0.01)
    elif MODE == 'http':
        try:
            from http.server import HTTPServer, SimpleHTTPRequestHandler
        except ImportError:
            from BaseHTTPServer import HTTPServer
            from SimpleHTTPServer import SimpleHTTPRequestHandler

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass
        srv = HTTPServer(('127.0.0.1', 0), Quiet)
        daemon(heartbeat_thread)
        out('READY %d' % srv.server_address[1])
        srv.serve_forever()
    elif MODE == 'rate':
        out('READY 0')
        n, start = 0, time.time()
        while True:
            fib(1)
            n += 1
            if n % 1000 == 0:
                now = time.time()
                if now - start >= 0.2:
                    out('rate %d' % (n / (now - start)))
                    n, start = 0, now
    elif MODE in ('sigint', 'sigintbusy'):
        # Catches Ctrl-C and goes on: a traced program must still get each.
        # sigintbusy never sleeps: lptrace reaches it through a pending
        # call, stopping it where it can (see inject's Restop).
        # A Ctrl-C may come while the last one is reported: only a count
        # is kept in the except clause.
        # The loops' jumps back check for signals too: the outer try
        # catches a Ctrl-C that lands on the inner one's.
        out('READY 0')
        pending = [0]
        while True:
            try:
                while True:
                    try:
                        while True:
                            while pending[0]:
                                pending[0] -= 1
                                out('caught')
                            heartbeat_step()
                            if MODE == 'sigint':
                                time.sleep(0.02)
                            else:
                                for _ in range(2000):
                                    tiny(0)
                    except KeyboardInterrupt:
                        pending[0] += 1
            except KeyboardInterrupt:
                pending[0] += 1
    elif MODE == 'fork':
        # A child forked while traced must not show up in the trace.
        def child_work():
            time.sleep(0.01)
        signal.signal(signal.SIGUSR2, lambda s, f: STATE.update(fork=True))
        out('READY 0')
        while True:
            heartbeat_step()
            time.sleep(0.02)
            if STATE.pop('fork', False):
                fork_child(child_work)
    elif MODE == 'calls':
        signal.signal(signal.SIGUSR2, lambda s, f: STATE.update(fork=True))
        out('READY 0')
        n = 0
        while True:
            n += 1
            app_outer(n)
            heartbeat_step()
            time.sleep(0.05)
            if STATE.pop('fork', False):
                fork_child(app_child_work)
    elif MODE == 'load':
        import subprocess
        import tempfile
        lock = threading.Lock()
        shared = {'n': 0}
        # Each worker says it has begun (made what it keeps: its directory,
        # its socket pair; spawned once), and READY waits for all of them.
        begun = threading.Semaphore(0)

        def check(ok):
            if not ok:
                STATE['errors'] += 1

        def cpu_worker():
            begun.release()
            while True:
                check(fib(16) == 987)

        def file_worker():
            d = tempfile.mkdtemp(prefix='load-')
            path = os.path.join(d, 'f')
            begun.release()
            i = 0
            while True:
                i += 1
                data = ('%d\n' % i) * 100
                with open(path, 'w') as f:
                    f.write(data)
                with open(path) as f:
                    check(f.read() == data)
                time.sleep(0.005)

        def socket_worker():
            a, b = socket.socketpair()
            begun.release()
            i = 0
            while True:
                i += 1
                msg = ('ping %d' % i).encode()
                a.sendall(msg)
                check(b.recv(100) == msg)
                time.sleep(0.002)

        def lock_worker():
            begun.release()
            while True:
                with lock:
                    v = shared['n']
                    time.sleep(0.001)
                    shared['n'] = v + 1

        def spawn_worker():
            check(subprocess.call(['true']) == 0)
            begun.release()
            while True:
                time.sleep(0.3)
                check(subprocess.call(['true']) == 0)

        workers = [cpu_worker, file_worker, socket_worker, lock_worker, lock_worker, spawn_worker]
        for f in workers:
            daemon(f, f.__name__)
        for f in workers:
            begun.acquire()
        out('READY 0')
        while True:
            heartbeat_step()
            time.sleep(0.02)
            with lock:
                check(shared['n'] >= 0)
    elif MODE == 'lock':
        lock = threading.Lock()
        lock.acquire()

        def blocked():
            lock.acquire()
        daemon(blocked)
        out('READY 0')
        heartbeat_forever()
    elif MODE == 'gilheld':
        import ctypes
        libc = ctypes.PyDLL(None)
        daemon(heartbeat_thread)
        out('READY 0')
        while True:
            libc.usleep(3000000)  # 3 s in C, GIL held
            time.sleep(0.5)
    else:
        sys.exit('unknown mode ' + MODE)


if __name__ == '__main__':
    main()
