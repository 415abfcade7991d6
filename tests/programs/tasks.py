# An asyncio program whose tasks wait on each other: main gathers two
# workers; worker-a awaits a helper coroutine that sleeps, worker-b waits
# on an event nobody sets. Prints READY when they are all waiting. Python
# 3.7+.
import asyncio
import sys


async def nap():
    await asyncio.sleep(3600)


async def worker_a():
    await nap()


async def worker_b(ev):
    await ev.wait()


async def main():
    ev = asyncio.Event()
    a = asyncio.ensure_future(worker_a())
    b = asyncio.ensure_future(worker_b(ev))
    for t, name in ((a, 'worker-a'), (b, 'worker-b')):
        if hasattr(t, 'set_name'):
            t.set_name(name)
    asyncio.get_event_loop().call_later(0.2, lambda: (sys.stdout.write('READY\n'), sys.stdout.flush()))
    await asyncio.gather(a, b)


asyncio.get_event_loop().run_until_complete(main()) if sys.version_info < (3, 7) else asyncio.run(main())
