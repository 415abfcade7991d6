# Functions of each kind a class holds (a method, a classmethod, a
# staticmethod, a property, an inherited method, a method of a class with
# a metaclass), a module's function and a nested one, three rounds 100 ms
# apart. lptrace must name them as 3.11+ does (Job.run) on every version.
# Python 2.7 and 3.6+.
import time


class Meta(type):
    def __getattribute__(cls, name):
        raise AssertionError('lptrace ran program code: %s' % name)


class Job(object):
    def run(self, n):
        return n

    @classmethod
    def make(cls):
        return cls()

    @staticmethod
    def check(x):
        return x

    @property
    def size(self):
        return 3


class Special(Job):
    pass


Guarded = Meta('Guarded', (object,), {'work': lambda self: 1})


def helper():
    def nested():
        return 1
    return nested()


for i in range(3):
    job = Job.make()
    job.run(i)
    Job.check(i)
    job.size
    Special().run(i)
    type.__dict__['__dict__'].__get__(Guarded)['work'](object.__new__(Guarded))
    helper()
    time.sleep(0.1)
