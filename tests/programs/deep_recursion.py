# A program that recurses close to its recursion limit, as deep parsers and
# tree walkers do: sys.setrecursionlimit(LIMIT), then, in a loop, a call
# chain to DEPTH frames below the limit's headroom (bounce: down and up
# again), printing "tick N" after each, then "LIMIT L", its recursion
# limit; "ERROR ..." if a RecursionError reaches it (it never does
# untraced).
#
#   deep_recursion.py DEPTH [LIMIT]   defaults: 993 of 1000
import sys
import time

depth = int(sys.argv[1]) if len(sys.argv) > 1 else 993
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
sys.setrecursionlimit(limit)


def here():
    # Frames on this thread's stack now.
    f, n = sys._getframe(), 0
    while f is not None:
        n += 1
        f = f.f_back
    return n


def bounce(n):
    if n > 0:
        return bounce(n - 1)
    time.sleep(0.05)
    return 0


def main():
    base = here()
    sys.stdout.write('READY 0\n')
    sys.stdout.flush()
    k = 0
    while True:
        try:
            bounce(depth - base - 1)
        except RuntimeError as e:  # RecursionError (3.5+) is one
            sys.stdout.write('ERROR %r\n' % (e,))
            sys.stdout.flush()
        k += 1
        sys.stdout.write('tick %d\nLIMIT %d\n' % (k, sys.getrecursionlimit()))
        sys.stdout.flush()


main()
