"""Run one of the web demo's services under uvicorn, in its own process.

``python -m asynclocal._demo._web_server {app,peer} ...`` serves on a free
127.0.0.1 port (bound here, so no other process can take it between choosing
and binding), prints ``READY <port>`` on stdout once it accepts connections, and
stops cleanly when its stdin closes (so it never outlives the demo) or on
SIGTERM. The token secret comes from the environment (`SECRET_ENV`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from ._web_data import SECRET_ENV

__all__ = ["main"]


def _setup_logging(path: str) -> None:
    """JSON lines, one per record, each with its request's id (python-json-logger)."""
    from .. import logging as al_logging
    from ..logging._json import JsonFormatter

    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    al_logging.install()


async def _serve(app_factory: Any, extra_ports: tuple[int, ...] = ()) -> None:
    loop = asyncio.get_running_loop()
    # Enough worker threads for the service layer, and none taken by the stdin watcher.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=8, thread_name_prefix="service"))
    stop = asyncio.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watcher", daemon=True).start()
    app, cleanup = app_factory()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=2048,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise SystemExit(f"uvicorn did not start on 127.0.0.1:{port}")
        await asyncio.sleep(0.01)
    print(" ".join(["READY", str(port), *map(str, extra_ports)]), flush=True)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await task
    stopper.cancel()
    await cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asynclocal._demo._web_server")
    parser.add_argument("role", choices=["app", "peer"])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--peer-url", default="")
    parser.add_argument("--ledger", default="", help="the ledger's gRPC target host:port")
    parser.add_argument("--log", default="")
    parser.add_argument("--db", default="")
    parser.add_argument("--rows", type=int, default=0)
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_ENV, "").encode()
    if not secret:
        raise SystemExit(f"{SECRET_ENV} is not set; start this through `python -m asynclocal demo`")

    if args.role == "peer":
        from ._web_ledger import start_ledger
        from ._web_peer import build_peer

        records: list[dict[str, Any]] = []

        def peer_factory() -> tuple[Any, Any]:
            async def nothing() -> None:
                return None

            return build_peer(secret, args.seed, records), nothing

        async def peer_and_ledger() -> None:
            ledger, ledger_port = await start_ledger(records, args.seed)
            try:
                await _serve(peer_factory, (ledger_port,))
            finally:
                await ledger.stop(None)

        asyncio.run(peer_and_ledger())
        return 0

    from ..integrations import grpc as al_grpc
    from ..integrations import httpx as al_httpx
    from ..transactions import TransactionManager, set_default_manager
    from ._web_app import build_app, create_database, peer_client

    _setup_logging(args.log)
    engine = create_database(args.db, args.rows)
    set_default_manager(TransactionManager(engine, name="demo"))
    # Every httpx client created from now on (the app's, and the one ContextBearerAuth
    # opens to refresh a token) sends the request id to the peer, and only there.
    al_httpx.install(targets=[args.peer_url])
    # Every gRPC channel created from now on carries the request's ids and trace to the
    # ledger (and only there): the ledger's calls continue the app's requests.
    al_grpc.install(targets=[args.ledger])

    def app_factory() -> tuple[Any, Any]:
        import grpc.aio

        peer, tokens = peer_client(args.peer_url)
        ledger = grpc.aio.insecure_channel(args.ledger)

        async def close() -> None:
            await peer.aclose()
            await tokens.aclose()
            await ledger.close()

        return build_app(secret, peer, ledger), close

    try:
        asyncio.run(_serve(app_factory))
    finally:
        engine.dispose()
        logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
