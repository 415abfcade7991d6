# A server written on select.epoll directly, as on Python 2.7 (where an
# interrupted epoll.poll raises IOError(EINTR) instead of waiting again):
# it answers each line with "echo <line>", and prints "ERROR ..." on its
# stdout if a poll fails. Python 2.7 and 3.x.
#
#   epoll_server.py TIMEOUT   the poll's timeout in seconds, or - for none
import os
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fingerprint  # noqa: E402

timeout = float(sys.argv[1]) if sys.argv[1:] != ['-'] else -1
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(8)
srv.setblocking(False)
ep = select.epoll()
ep.register(srv.fileno(), select.EPOLLIN)
conns = {}
buffers = {}


def handle_line(line):
    if line == 'state':
        return fingerprint.take()
    return 'echo ' + line


sys.stdout.write('READY %d\n' % srv.getsockname()[1])
sys.stdout.flush()
while True:
    try:
        events = ep.poll(timeout)
    except Exception as e:
        sys.stdout.write('ERROR %r\n' % (e,))
        sys.stdout.flush()
        continue
    for fd, ev in events:
        if fd == srv.fileno():
            c, _ = srv.accept()
            conns[c.fileno()] = c
            buffers[c.fileno()] = b''
            ep.register(c.fileno(), select.EPOLLIN)
            continue
        c = conns[fd]
        data = c.recv(4096)
        if not data:
            ep.unregister(fd)
            c.close()
            del conns[fd], buffers[fd]
            continue
        buffers[fd] += data
        while b'\n' in buffers[fd]:
            line, buffers[fd] = buffers[fd].split(b'\n', 1)
            c.sendall((handle_line(line.decode()) + '\n').encode())
