# Threads that live a moment each, hundreds a second (a server that starts a
# thread per request, concurrent.futures' short-lived workers): each one's
# thread state is freed when it ends, at any thread switch. Two busy threads
# compute beside them, never blocking. The main thread prints "tick N" every
# 100 ms and the number of threads that ran ("ran N") at the end of each
# second. Python 2.7 and 3.6+.
import sys
import threading
import time

ran = [0]
kept = [None] * 64  # blocks the size of a thread state, freed and made anew


def short_job(x):
    return sum(range(x))


def short_lived():
    short_job(50)
    n = ran[0]
    kept[n % 64] = [n] * (20 + n % 40)
    ran[0] = n + 1


def starter():
    while True:
        ts = [threading.Thread(target=short_lived) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def busy_step(x):
    return x + 1


def busy():
    x = 0
    while True:
        x = busy_step(x)


for f in (starter, starter, busy, busy):
    t = threading.Thread(target=f)
    t.daemon = True
    t.start()
sys.stdout.write('READY 0\n')
sys.stdout.flush()
n = 0
while True:
    time.sleep(0.1)
    n += 1
    sys.stdout.write('tick %d\n' % n)
    if n % 10 == 0:
        sys.stdout.write('ran %d\n' % ran[0])
    sys.stdout.flush()
