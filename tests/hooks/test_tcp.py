"""examples/tcp_connection_state.py: per-connection state on the execution resource.

Several clients talk to the example server at the same time, with random
delays between their lines; each must get back its own running count and its
own connection id. The hook events must show one TCPConnection per client,
each the trigger of its handler task, each destroyed once.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import random
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

from .conftest import Recorder

Run = Callable[[Coroutine[Any, Any, Any]], Any]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tcp_connection_state.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tcp_connection_state", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tcp_connection_state"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def client(port: int, lines: int, rng: random.Random) -> list[tuple[int, int]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for _ in range(lines):
            await asyncio.sleep(rng.uniform(0, 0.01))
            writer.write(b"hello\n")
            await writer.drain()
            conn_id, count = (await asyncio.wait_for(reader.readline(), 5)).split()
            answers.append((int(conn_id), int(count)))
        writer.write(b"quit\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server hung up
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


def test_each_connection_counts_its_own_messages(run: Run, recorder: Recorder) -> None:
    example = load_example()
    rng = random.Random(4)
    plan = [rng.randint(1, 8) for _ in range(8)]

    async def main() -> list[list[tuple[int, int]]]:
        server = await example.start()
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.gather(
                *(client(port, n, random.Random(i)) for i, n in enumerate(plan))
            )
        finally:
            server.close()
            await server.wait_closed()

    results = run(main())
    gc.collect()
    handler_ids = set()
    for lines, answers in zip(plan, results, strict=True):
        ids = {conn_id for conn_id, _ in answers}
        assert len(ids) == 1  # one handler task per connection
        assert [count for _, count in answers] == list(range(1, lines + 1))
        handler_ids |= ids
    assert len(handler_ids) == len(plan)  # no two connections shared a resource

    inits = recorder.inits()
    connections = {i for i, e in inits.items() if e.type == "TCPConnection"}
    assert len(connections) == len(plan)
    # every handler task was started by its own connection
    assert {inits[h].trigger for h in handler_ids} == connections
    assert all(inits[h].label == "Task handle_connection" for h in handler_ids)
    destroys = Counter(e.async_id for e in recorder.of("destroy"))
    assert all(destroys[c] == 1 for c in connections | handler_ids)
