# A program whose profile is known, for lptrace record: outer() calls
# inner() (which calls leaf()) and then sleeper(), which sleeps 0.3 s; a
# thread named worker-1 calls inner() three times first.
import threading
import time


def leaf(n):
    return sum(range(n))


def inner():
    return leaf(1000)


def sleeper():
    time.sleep(0.3)


def outer():
    inner()
    sleeper()


def worker():
    for _ in range(3):
        inner()


def main():
    t = threading.Thread(target=worker, name='worker-1')
    t.start()
    t.join()
    outer()


main()
