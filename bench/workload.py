# Workloads for lptrace's benchmark (bench/main.go). Python 2.7 and 3.6+.
# Prints "READY" then, every 0.3 s, "rate <calls per second>" of the
# workload's unit of work.
#
#   workload.py loop   a tiny function called in a loop (1 call per unit)
#   workload.py fib    recursive fib(15) (1973 calls per unit, counted as calls)
#   workload.py mix    json, re, dict and class work (~30 calls per unit)
#   workload.py http   an http.server (SimpleHTTPServer on 2.7) answering a
#                      small page; the requests come from a second, untraced
#                      process (workload.py http-client PORT), which prints
#                      the rate of answered requests and exits with the server
#   workload.py idle   sleeps (for lptrace's idle CPU)
#   workload.py accept blocks in accept() on a socket nobody connects to
#   workload.py paced RATE   the tiny function RATE times a second, evenly
#                      (for events dropped below saturation)
import json
import re
import sys
import time


def tiny(x):
    return x


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Point(object):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm(self):
        return (self.x * self.x + self.y * self.y) ** 0.5


WORD = re.compile(r'\w+')


def mix_unit(i):
    doc = {'id': i, 'tags': ['a', 'b', 'c'], 'p': [Point(i, 2).norm() for _ in range(3)]}
    text = json.dumps(doc)
    back = json.loads(text)
    return len(WORD.findall(text)) + len(back)


def http_server():
    try:
        from http.server import HTTPServer, BaseHTTPRequestHandler
    except ImportError:
        from BaseHTTPServer import HTTPServer, BaseHTTPRequestHandler
    import subprocess

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({'path': self.path, 'ok': True}).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(('127.0.0.1', 0), Handler)
    subprocess.Popen([sys.executable, __file__, 'http-client', str(server.server_address[1])])
    sys.stdout.write('READY\n')
    sys.stdout.flush()
    server.serve_forever()


def http_client(port):
    try:
        from http.client import HTTPConnection
    except ImportError:
        from httplib import HTTPConnection
    n, start = 0, time.time()
    while True:
        try:
            c = HTTPConnection('127.0.0.1', port, timeout=10)
            c.request('GET', '/item/%d' % n)
            c.getresponse().read()
            c.close()
            n += 1
            now = time.time()
            if now - start >= 0.3:
                sys.stdout.write('rate %d\n' % (n / (now - start)))
                sys.stdout.flush()
                n, start = 0, now
        except Exception:
            return  # the server or the reader is gone


def paced(rate, out):
    # Batches of 1000 calls, each started when it is due: the pace holds
    # while the traced program can go faster than RATE.
    begin = start = time.time()
    n = done = 0
    while True:
        for i in range(1000):
            tiny(i)
        n += 1000
        done += 1000
        now = time.time()
        ahead = done / float(rate) - (now - begin)
        if ahead < -0.01:
            # Held up (the attach pauses the program): start the pace
            # again, no burst to catch up.
            begin, done = now, 0
        elif ahead > 0:
            time.sleep(ahead)
            now = time.time()
        if now - start >= 0.3:
            out.write('rate %d\n' % (n / (now - start)))
            out.flush()
            n, start = 0, now


def main():
    mode = sys.argv[1]
    out = sys.stdout
    if mode == 'http':
        return http_server()
    if mode == 'http-client':
        return http_client(int(sys.argv[2]))
    out.write('READY\n')
    out.flush()
    if mode == 'idle':
        while True:
            time.sleep(1)
    if mode == 'accept':
        import socket
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(('127.0.0.1', 0))
        srv.listen(8)
        while True:
            srv.accept()[0].close()
    if mode == 'paced':
        return paced(int(sys.argv[2]), out)
    per = {'loop': 1, 'fib': 1973, 'mix': 1}[mode]
    n, start = 0, time.time()
    while True:
        if mode == 'loop':
            for i in range(1000):
                tiny(i)
            n += 1000
        elif mode == 'fib':
            fib(15)
            n += 1
        else:
            mix_unit(n)
            n += 1
        now = time.time()
        if now - start >= 0.3:
            out.write('rate %d\n' % (n * per / (now - start)))
            out.flush()
            n, start = 0, now


if __name__ == '__main__':
    main()
