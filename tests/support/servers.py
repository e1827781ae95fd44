"""Start real servers on 127.0.0.1 for tests: uvicorn (ASGI), waitress (WSGI), aiohttp.

Each helper is a context manager that yields the base URL and stops the server
on exit. Servers run in a background thread of the test process, so the test
can inspect in-process state (captured log records, counters) afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def run_uvicorn(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yield its base URL."""
    import uvicorn

    port = free_port()
    cfg = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto", **config
    )
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def run_waitress(app: Callable[..., Any], threads: int = 8) -> Iterator[str]:
    """Serve a WSGI app with waitress (a threaded server) on a free loopback port."""
    from waitress.server import create_server

    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=threads)
    closing = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:
            # close() from the test thread races the loop's select(): EBADF on shutdown.
            if not closing.is_set():
                raise

    thread = threading.Thread(target=serve, name=f"waitress-{port}", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        closing.set()
        server.close()
        thread.join(10)


@contextlib.contextmanager
def run_aiohttp(app: Any) -> Iterator[str]:
    """Serve an aiohttp `web.Application` on a free loopback port in its own loop thread."""
    from aiohttp import web

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", port)
        loop.run_until_complete(site.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name=f"aiohttp-{port}", daemon=True)
    thread.start()
    try:
        if not started.wait(15):
            raise RuntimeError("aiohttp did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
