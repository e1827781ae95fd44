"""Per-connection state on the execution resource (Node's async_hooks TCP example, for asyncio).

A TCP server on `asyncio.start_server` where every connection counts the lines
it received. The count lives on `execution_async_resource()`: inside a
connection's handler that is the handler's own task, so each connection sees
only its own count, however the connections interleave. No dict keyed by
socket, no argument threading.

Run it and talk to it with a few `nc 127.0.0.1 8888` sessions::

    python examples/tcp_connection_state.py [port]

Each line you send is answered with "<connection async id> <count>".
"""

from __future__ import annotations

import asyncio
import sys

from asynclocal import hooks


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each line with this connection's id and how many lines it sent so far."""
    resource = hooks.execution_async_resource()  # this connection's handler task
    resource.count = 0  # type: ignore[attr-defined]
    try:
        while line := await reader.readline():
            if line.strip() == b"quit":
                break
            resource.count += 1  # type: ignore[attr-defined]
            answer = f"{hooks.execution_async_id()} {resource.count}\n"  # type: ignore[attr-defined]
            writer.write(answer.encode())
            await writer.drain()
    finally:
        writer.close()


async def start(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start the server (tracking must be on: see `main`). Port 0 picks a free port."""
    return await asyncio.start_server(handle_connection, host, port)


async def main(port: int) -> None:
    server = await start(port=port)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # One call turns tracking on (a hook without callbacks is enough); setting
    # ASYNCLOCAL_HOOKS=1 plus asynclocal.enable_from_env() does the same.
    tracking = hooks.create_hook().enable()
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
    except KeyboardInterrupt:
        pass
    finally:
        tracking.disable()
