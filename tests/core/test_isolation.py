"""Isolation under load: thousands of overlapping requests on one loop.

Every request runs in `als.run(its own store, handler)` and, at every step
(random awaits, loop callbacks, gather, TaskGroup, wait_for timeouts,
cancellation), checks the store it reads against its own request id.
"""

from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass, field

import pytest

from asynclocal import AsyncLocalStorage

REQUESTS = 2000


@dataclass
class Request:
    id: int
    user: str
    log: list[int] = field(default_factory=list)


@dataclass
class Tally:
    checks: int = 0
    mixups: list[str] = field(default_factory=list)


request: AsyncLocalStorage[Request] = AsyncLocalStorage(name="isolation.request")
tenant: AsyncLocalStorage[str] = AsyncLocalStorage(name="isolation.tenant")


def check(tally: Tally, expected: int, where: str) -> None:
    tally.checks += 1
    store = request.get_store()
    if store is None or store.id != expected:
        tally.mixups.append(f"{where}: request {expected} saw {store and store.id}")
        return
    store.log.append(expected)
    if tenant.get_store() != f"tenant-{expected % 7}":
        tally.mixups.append(f"{where}: request {expected} saw tenant {tenant.get_store()}")


async def pause(rng: random.Random) -> None:
    await asyncio.sleep(rng.choice((0, 0, 0.0005, 0.001, 0.002)))


async def handler(rid: int, tally: Tally, rng: random.Random) -> int:
    loop = asyncio.get_running_loop()
    check(tally, rid, "start")
    await pause(rng)
    check(tally, rid, "after await")

    done = loop.create_future()
    loop.call_soon(check, tally, rid, "call_soon")

    def later() -> None:
        check(tally, rid, "call_later")
        done.set_result(None)

    loop.call_later(rng.random() * 0.002, later)

    async def sub(step: int) -> int:
        await pause(rng)
        check(tally, rid, f"gather-{step}")
        return step

    assert await asyncio.gather(*(sub(i) for i in range(3))) == [0, 1, 2]

    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as group:
            for i in range(2):
                group.create_task(sub(10 + i))

    async def slow() -> None:
        try:
            await asyncio.sleep(1)
        finally:
            check(tally, rid, "wait_for cancelled")

    if rng.random() < 0.3:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), timeout=rng.random() * 0.002)
    else:
        victim = asyncio.create_task(slow())
        await pause(rng)
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim

    # A nested storage run inside the request keeps the outer store visible.
    nested = await tenant.run(f"nested-{rid}", _nested_tenant, rid)
    assert nested == rid

    await done
    await pause(rng)
    check(tally, rid, "end")
    return rid


async def _nested_tenant(rid: int) -> int:
    await asyncio.sleep(0)
    store = request.get_store()
    return -1 if store is None else store.id


async def serve(rid: int, tally: Tally, rng: random.Random) -> int:
    return await tenant.run(
        f"tenant-{rid % 7}", request.run, Request(rid, f"u{rid}"), handler, rid, tally, rng
    )


async def test_thousands_of_overlapping_requests_never_mix() -> None:
    rng = random.Random(2)
    tally = Tally()
    tasks = [asyncio.create_task(serve(rid, tally, rng)) for rid in range(REQUESTS)]
    results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert results == list(range(REQUESTS))
    assert tally.mixups == []
    per_request = 11 if sys.version_info >= (3, 11) else 9
    assert tally.checks >= REQUESTS * per_request
    assert request.get_store() is None
    assert tenant.get_store() is None


async def test_the_experiment_detects_a_shared_store() -> None:
    # Control: with one shared mutable "current request" (what a global would do),
    # the same experiment reports mix-ups, so a pass above means something.
    rng = random.Random(3)
    tally = Tally()
    shared: dict[str, Request] = {}

    async def leaky(rid: int) -> None:
        shared["current"] = Request(rid, "")
        await pause(rng)
        tally.checks += 1
        if shared["current"].id != rid:
            tally.mixups.append(str(rid))

    await asyncio.gather(*(leaky(rid) for rid in range(200)))
    assert tally.mixups
