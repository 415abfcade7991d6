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
import os
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


def floor():
    # The least a tool that times every call through sys.monitoring (3.12+)
    # pays, whatever it does with the times: a builtin called at each
    # PY_START and PY_RETURN that reads the time-stamp counter (x86-64
    # machine code: rdtsc) and returns None. bench compares lptrace's -c and
    # -T with it (the "floor" column). False where it cannot be set up.
    import ctypes
    import mmap
    import platform
    import struct
    if not hasattr(sys, 'monitoring') or platform.machine() != 'x86_64':
        return False
    code = (b'\x0f\x31'  # rdtsc
            b'\x48\xc1\xe2\x20\x48\x09\xd0'  # shl rdx, 32; or rax, rdx (as a clock reads it)
            b'\x48\xb8' + struct.pack('<Q', id(None)) + b'\xc3')  # mov rax, None; ret
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page[:len(code)] = code
    text = ctypes.addressof(ctypes.c_char.from_buffer(page))

    class MethodDef(ctypes.Structure):
        _fields_ = [('name', ctypes.c_char_p), ('meth', ctypes.c_void_p), ('flags', ctypes.c_int), ('doc', ctypes.c_char_p)]
    md = MethodDef(b'floor', text, 0x80, None)  # METH_FASTCALL
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    f = new(ctypes.addressof(md), (page, md), None)  # its self keeps the code
    mon, events = sys.monitoring, sys.monitoring.events
    mon.use_tool_id(5, 'floor')
    mon.register_callback(5, events.PY_START, f)
    mon.register_callback(5, events.PY_RETURN, f)
    mon.set_events(5, events.PY_START | events.PY_RETURN)
    return True


def main():
    mode = sys.argv[1]
    out = sys.stdout
    if os.environ.get('LPTRACE_BENCH_FLOOR') and not floor():
        out.write('NO FLOOR\n')
        out.flush()
        return
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
