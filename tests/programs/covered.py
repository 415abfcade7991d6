# A program measured by coverage.py (Debian's python3-coverage), as a test
# suite or a service under `coverage run` is: each line it reads on its
# socket runs work() on it and answers "ok <result>"; "quit" ends it, and
# coverage writes its data file at the exit.
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fingerprint  # noqa: E402


def classify(n):
    if n % 15 == 0:
        return 'fizzbuzz'
    if n % 3 == 0:
        return 'fizz'
    if n % 5 == 0:
        return 'buzz'
    return str(n)


def work(text):
    total = 0
    for part in text.split(','):
        total += len(classify(int(part)))
    return total


def never_called():
    return 'not covered'


srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(1)
sys.stdout.write('READY %d\n' % srv.getsockname()[1])
sys.stdout.flush()
conn, _ = srv.accept()
f = conn.makefile('rb')
while True:
    line = f.readline().decode().strip()
    if not line or line == 'quit':
        break
    if line == 'state':
        conn.sendall((fingerprint.take() + '\n').encode())
        continue
    conn.sendall(('ok %d\n' % work(line)).encode())
conn.close()
