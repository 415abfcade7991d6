# Coroutines and generators that suspend and resume: a trace must show one
# call of each, its resumptions and suspensions as such, and -c must count
# the calls, not the resumptions.
#   coroutines.py [ROUNDS]  each round: 3 tasks of process() (2 awaits each,
#                           one 50 ms sleep), and list(countdown(3))
import sys
import time

try:
    import asyncio
except ImportError:  # 2.7: generators only
    asyncio = None


def countdown(n):
    while n > 0:
        yield n
        n -= 1


if asyncio is not None:
    exec('''
async def step(i):
    await asyncio.sleep(0)
    return i


async def process(i):
    await asyncio.sleep(0.05)
    x = await step(i)
    return x * 2


async def round_():
    return await asyncio.gather(process(1), process(2), process(3))
''')


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print('READY')
    sys.stdout.flush()
    for _ in range(rounds):
        if asyncio is not None:
            loop = asyncio.new_event_loop()
            try:
                print('RESULT %s' % (loop.run_until_complete(round_()),))
            finally:
                loop.close()
        print('COUNTDOWN %s' % (list(countdown(3)),))
        sys.stdout.flush()


main()
