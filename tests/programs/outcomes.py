# Calls that return and calls that raise, three of each. Python 2.7 and
# 3.6+.


def ok(x):
    return x * 2


def bad(x):
    raise ValueError(x)


for i in range(3):
    ok(i)
    try:
        bad(i)
    except ValueError:
        pass
