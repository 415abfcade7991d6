# Functions called with the arguments lptrace's machine code records
# itself on 3.6+ (None, bools, ints within 56 bits, floats, ASCII str and
# bytes, tuples of those, objects) and others the Python callback writes
# (a list, a big int, a non-ASCII or subclassed str, a tuple in a tuple,
# *args, **kwargs, an argument a closure holds), three rounds 100 ms
# apart, so that the machine code is in place for the later ones. Python
# 2.7 and 3.6+.
import time


class Text(str):
    pass


class Thing(object):
    def method(self, n):
        return n


def a_small(a, b, c, d):
    return a


def a_float(x):
    return x


def a_text(s):
    return s


def a_mixed(a, b=None, c=2.5):
    return a


def a_varargs(a, *rest, **named):
    return a


def a_cell(a):
    def inner():
        return a
    return inner()


def a_gen(a, b):
    yield a
    yield b


def main():
    floats = [0.0, -0.0, 1.5, 0.1, 1e16, 1e15, 1e-4, 1e-5, 123456789.125, 2.0 ** 70, -3e-300,
              float('inf'), float('-inf'), float('nan'), 1 / 3.0]
    texts = ['', "it's", '"q"', '\'"', 'tab\there', 'nl\ncr\r\x00\x1f\x7f', 'back\\slash', 'x' * 40,
             b'', b'\x00\xff\x80"\'', b'y' * 40, u'\u00e9t\u00e9', Text('sub'), 'short']
    for i in range(3):
        a_small(None, True, False, i - 1)
        a_small(-(2 ** 40), 2 ** 55 - 1, 2 ** 55, 2 ** 70)
        for f in floats:
            a_float(f)
        for s in texts:
            a_text(s)
        a_mixed(1)
        a_mixed((1, 'two', 3.0), b=(), c=tuple(range(30)))
        a_mixed(((1,),), b=(Thing(),), c=(None,))
        a_mixed([1, 2], b=(3,), c=None)
        a_varargs(1, 2, k=3)
        a_cell(7)
        Thing().method(5)
        for _ in a_gen(1, 'z'):
            pass
        time.sleep(0.1)


main()
