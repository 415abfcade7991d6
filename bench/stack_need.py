# How much C stack lptrace's payloads need: compiles parts of hook/ from
# source (all of them: the heaviest path, the tracing hook's fallback when
# no precompiled code suits the target; or those PARTS names, e.g.
# PARTS=common.py,exec.py for exec's payload), loads the code back with
# marshal and formats a stack, in a thread whose whole stack is N KiB, for
# each N given. Prints "N ok" or "N <error>"; a crash of the interpreter
# is the answer "not enough" too.
#
#   python bench/stack_need.py 48 64 96     (docs/design.md, "Stack")
import glob
import marshal
import os
import sys
import threading
import traceback

here = os.path.dirname(os.path.abspath(__file__))
parts = [os.path.join(here, '..', 'hook', p) for p in os.environ.get('PARTS', '').split(',') if p]
src = ''.join(open(p).read() for p in parts or sorted(glob.glob(os.path.join(here, '..', 'hook', '*.py'))))


def job(res):
    try:
        marshal.loads(marshal.dumps(compile(src, '<lptrace>', 'exec', 0, 1)))
        traceback.format_stack()
        res.append('ok')
    except BaseException as e:
        res.append(repr(e))


for kb in [int(a) for a in sys.argv[1:]]:
    try:
        threading.stack_size(kb << 10)
    except ValueError as e:
        print('%d %s' % (kb, e))
        continue
    res = []
    t = threading.Thread(target=job, args=(res,))
    t.start()
    t.join()
    print('%d %s' % (kb, res[0]))
    sys.stdout.flush()
