# Functions that return the values lptrace's machine code records itself
# (None, bools, ints within 56 bits in the value word; floats, strings,
# tuples of those and objects as records, 3.6+) and others the Python
# callback makes a record of (a big int, a tuple in a tuple, a list, an
# exception), three rounds 100 ms apart, so that the machine code is in
# place for the later ones. Python 2.7 and 3.6+.
import time


def r_none():
    return None


def r_int(x):
    return x


def r_bool(x):
    return x > 5


def r_float():
    return 1.5


def r_str():
    return 'a\tb'


def r_big():
    return 2 ** 70


class Thing(object):
    pass


THING = Thing()


def r_tuple(x):
    return x


def r_obj():
    return THING


def boom():
    raise KeyError('k')


def main():
    for i in range(3):
        r_none()
        r_int(i - 1)
        r_int(-(2 ** 40))
        r_int(2 ** 55 - 1)
        r_int(2 ** 55)
        r_bool(i * 4)
        r_float()
        r_str()
        r_big()
        r_tuple((1, 'x', None, 2.5))
        r_tuple(tuple(range(20)))
        r_tuple(('y' * 40,))
        r_tuple(((1,), 2))
        r_tuple([3])
        r_obj()
        try:
            boom()
        except KeyError:
            pass
        time.sleep(0.1)


main()
