# Four threads calling a tiny function in a tight loop, never blocking (the
# classic "my server is at 100% CPU, what is it doing?"); the main thread
# prints "tick N" every 100 ms. Python 2.7 and 3.6+.
import sys
import threading
import time


def spin_step(x):
    return x + 1


def spin():
    x = 0
    while True:
        x = spin_step(x)


for i in range(4):
    t = threading.Thread(target=spin, name='spinner-%d' % i)
    t.daemon = True
    t.start()
sys.stdout.write('READY 0\n')
sys.stdout.flush()
n = 0
while True:
    time.sleep(0.1)
    n += 1
    sys.stdout.write('tick %d\n' % n)
    sys.stdout.flush()
