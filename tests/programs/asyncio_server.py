# An asyncio TCP server (Python 3.7+), as idle servers are: the event loop
# waits in epoll_wait (selectors.DefaultSelector) with no timeout at all.
# Each line sent to it comes back as "echo <line>"; "state" answers with a
# fingerprint of what lptrace must leave as it was (see fingerprint.py).
#
#   asyncio_server.py [timers]   timers: a callback every 50 ms keeps a
#                                timeout in every epoll_wait
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fingerprint  # noqa: E402

TIMERS = 'timers' in sys.argv[1:]


def handle_line(line):
    if line == 'state':
        return fingerprint.take()
    return 'echo ' + line


async def serve_client(reader, writer):
    while True:
        data = await reader.readline()
        if not data:
            break
        writer.write((handle_line(data.decode().strip()) + '\n').encode())
        await writer.drain()
    writer.close()


def timer(loop):
    loop.call_later(0.05, timer, loop)


async def main():
    server = await asyncio.start_server(serve_client, '127.0.0.1', 0)
    if TIMERS:
        timer(asyncio.get_running_loop())
    print('READY %d' % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
