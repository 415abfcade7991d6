# lptrace's demo program: a small job server with worker threads. Works on
# Python 2.7 and 3.6+. Run it, then look inside it with lptrace.
import random
import threading
import time

try:
    import queue
except ImportError:
    import Queue as queue

jobs = queue.Queue()
done = {'count': 0}
SETTINGS = {'slow_down': 0.0}


def parse(text):
    return [int(x) for x in text.split(',')]


def checksum(numbers):
    total = 0
    for n in numbers:
        total = (total * 31 + n) % 1000003
    return total


def handle(job):
    numbers = parse(job)
    time.sleep(SETTINGS['slow_down'])
    return checksum(numbers)


def worker():
    while True:
        job = jobs.get()
        handle(job)
        done['count'] += 1


def producer():
    while True:
        jobs.put(','.join(str(random.randint(0, 999)) for _ in range(50)))
        time.sleep(0.01)


def main():
    for i in range(3):
        t = threading.Thread(target=worker, name='worker-%d' % i)
        t.daemon = True
        t.start()
    t = threading.Thread(target=producer, name='producer')
    t.daemon = True
    t.start()
    while True:
        time.sleep(1)


if __name__ == '__main__':
    main()
