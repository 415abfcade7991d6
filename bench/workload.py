# Workloads for lptrace's benchmark (bench/main.go). Python 2.7 and 3.6+.
# Prints "READY" then, every 0.3 s, "rate <calls per second>" of the
# workload's unit of work.
#
#   workload.py loop   a tiny function called in a loop (1 call per unit)
#   workload.py fib    recursive fib(15) (1973 calls per unit, counted as calls)
#   workload.py mix    json, re, dict and class work (~30 calls per unit)
#   workload.py idle   sleeps (for lptrace's idle CPU)
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


def main():
    mode = sys.argv[1]
    out = sys.stdout
    out.write('READY\n')
    out.flush()
    if mode == 'idle':
        while True:
            time.sleep(1)
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
