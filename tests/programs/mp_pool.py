# multiprocessing.Pool(2).map(square_it, range(20)) with the start method
# given (fork, spawn or forkserver), as the multiprocessing documentation's
# first example does: the pool's workers exit as soon as the map is done.
# Prints "PARENT <pid>", then "RESULT <the squares>"; exit status 0.
# Python 3.7+ (start methods by context since 3.4; -f needs 3.7).
import multiprocessing
import os
import sys


def square_it(x):
    return x * x


def pool_job(method):
    pool = multiprocessing.get_context(method).Pool(2)
    try:
        return pool.map(square_it, range(20))
    finally:
        pool.close()
        pool.join()


def main():
    sys.stdout.write('PARENT %d\n' % os.getpid())
    sys.stdout.flush()
    result = pool_job(sys.argv[1])
    sys.stdout.write('RESULT %s\n' % ' '.join(str(n) for n in result))


if __name__ == '__main__':
    main()
