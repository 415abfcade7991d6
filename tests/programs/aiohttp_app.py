# An aiohttp web application (Debian's python3-aiohttp), idle between
# requests in the event loop's epoll_wait. GET /hello/NAME answers
# "hello NAME"; GET /state the fingerprint (see fingerprint.py).
import asyncio
import os
import socket
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fingerprint  # noqa: E402


def greeting(name):
    return 'hello %s' % name


async def hello(request):
    return web.Response(text=greeting(request.match_info['name']))


async def state(request):
    return web.Response(text=fingerprint.take())


async def main():
    app = web.Application()
    app.add_routes([web.get('/hello/{name}', hello), web.get('/state', state)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    site = web.SockSite(runner, sock)
    await site.start()
    print('READY %d' % sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
