# numpy (Debian's, with its BLAS) multiplying big matrices in the main
# thread: each product is a long C call, about a second, with the GIL
# released, while BLAS's own threads compute beside it. Prints "tick N"
# after each product.
import sys

import numpy

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
a = numpy.full((n, n), 0.5)


def product():
    return a @ a


print('READY 0', flush=True)
k = 0
while True:
    product()
    k += 1
    print('tick %d' % k, flush=True)
