# A known amount of work for checking lptrace's counts and durations:
# sleeper() sleeps 50 ms, 6 times; rec(20) recurses 20 deep and sleeps
# 20 ms at the bottom, 3 times (63 calls); tiny() is called 1000 times;
# fail() raises 7 times. With an argument N: then two threads call hot()
# N times each, as fast as they can; with a second one, "kill", it then
# dies of SIGKILL. Runs once and exits. Python 2.7 and 3.6+.
import os
import signal
import sys
import threading
import time


def sleeper():
    time.sleep(0.05)


def rec(n):
    if n:
        rec(n - 1)
    else:
        time.sleep(0.02)


def tiny(x):
    return x


def fail():
    raise ValueError('expected')


def hot(x):
    return x


def hot_loop(n):
    for i in range(n):
        hot(i)


def main():
    for _ in range(6):
        sleeper()
    for _ in range(3):
        rec(20)
    for i in range(1000):
        tiny(i)
    for _ in range(7):
        try:
            fail()
        except ValueError:
            pass
    if len(sys.argv) > 1:
        n = int(sys.argv[1])
        workers = [threading.Thread(target=hot_loop, args=(n,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if sys.argv[2:] == ['kill']:
        os.kill(os.getpid(), signal.SIGKILL)


main()
