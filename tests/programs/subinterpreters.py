# Isolated subinterpreters (3.12+: own GIL, own object allocator), each
# computing without a pause in a thread of its own beside the main
# interpreter's threads;
# prints "tick N" every 100 ms from the main interpreter.
import os
import sys
import threading
import time

try:
    import _interpreters as interpreters  # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.12

CODE = '''
import time
def sub_work():
    total = 0
    for i in range(1000):
        total += i
    return total
while True:
    sub_work()
'''


def run_sub():
    interp = interpreters.create()
    interpreters.run_string(interp, CODE)


def main_work():
    return sum(range(100))


for _ in range(2):
    threading.Thread(target=run_sub, daemon=True).start()
time.sleep(0.3)
print('READY 0', flush=True)
n = 0
while True:
    main_work()
    time.sleep(0.1)
    n += 1
    print('tick %d' % n, flush=True)
