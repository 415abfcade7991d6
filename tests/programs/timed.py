# A known amount of work for checking lptrace's counts and durations:
# sleeper() sleeps 50 ms, 6 times; rec(20) recurses 20 deep and sleeps
# 20 ms at the bottom, 3 times (63 calls); tiny() is called 1000 times.
# Runs once and exits. Python 2.7 and 3.6+.
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


def main():
    for _ in range(6):
        sleeper()
    for _ in range(3):
        rec(20)
    for i in range(1000):
        tiny(i)


main()
