# A gevent program as monkey-patched servers are (gevent from Debian): the
# standard library's threads, locks, sleeps and sockets replaced by
# greenlets on the main OS thread. 50 greenlets loop on short sleeps; a
# server greenlet answers each line with "echo <line>" ("state": the
# fingerprint, see fingerprint.py). SIGTERM makes it exit with status 3
# from its own handler.
from gevent import monkey
monkey.patch_all()

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fingerprint  # noqa: E402

counts = [0]


def green_step(i):
    counts[0] += 1


def green_work(i):
    while True:
        green_step(i)
        gevent.sleep(0.01)


def handle_line(line):
    if line == 'state':
        return fingerprint.take()
    return 'echo ' + line


def serve(sock, addr):
    f = sock.makefile('rwb')
    for line in f:
        f.write((handle_line(line.decode().strip()) + '\n').encode())
        f.flush()


def on_term(signum, frame):
    sys.exit(3)


signal.signal(signal.SIGTERM, on_term)
for i in range(50):
    gevent.spawn(green_work, i)
server = StreamServer(('127.0.0.1', 0), serve)
server.start()
print('READY %d' % server.server_port, flush=True)
n = 0
while True:
    gevent.sleep(0.1)
    n += 1
    print('tick %d' % n, flush=True)
