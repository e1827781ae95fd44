"""The standard-library phases: asyncio, a thread pool and a process pool."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .. import processes, threads
from ._base import Phase, Progress, Tally, register
from ._jobs import process_job, thread_job
from ._stores import DemoRequest, current_id, request, tenant

R = TypeVar("R")

_PAUSES = (0.0, 0.0, 0.0005, 0.001, 0.002)


def _tenant_of(rid: int) -> str:
    return f"tenant-{rid % 7}"


async def _serve(rid: int, handler: Callable[..., Awaitable[R]], *args: object) -> R:
    """Start one request: both storages set for everything the handler starts."""
    inner: Callable[..., Awaitable[R]] = request.run
    return await tenant.run(_tenant_of(rid), inner, DemoRequest.make(rid), handler, *args)


async def _asyncio_request(rid: int, tally: Tally, rng: random.Random) -> None:
    loop = asyncio.get_running_loop()
    tally.check(rid, current_id(), "start")
    await asyncio.sleep(rng.choice(_PAUSES))
    tally.check(rid, current_id(), "after an await")

    called_back = loop.create_future()

    def later() -> None:
        tally.check(rid, current_id(), "call_later callback")
        called_back.set_result(None)

    loop.call_soon(lambda: tally.check(rid, current_id(), "call_soon callback"))
    loop.call_later(rng.random() * 0.002, later)

    async def part(step: int) -> None:
        await asyncio.sleep(rng.choice(_PAUSES))
        tally.check(rid, current_id(), f"gathered task {step}")
        tally.check(_tenant_of(rid), tenant.get_store(), "tenant in gathered task")

    await asyncio.gather(*(part(i) for i in range(3)))

    async def slow() -> None:
        try:
            await asyncio.sleep(1)
        finally:
            tally.check(rid, current_id(), "cancelled task's cleanup")

    try:
        await asyncio.wait_for(slow(), timeout=rng.random() * 0.002)
    except asyncio.TimeoutError:
        pass
    await called_back
    tally.check(rid, current_id(), "end")


def _run_asyncio(requests: int, seed: int, progress: Progress) -> tuple[Tally, str]:
    tally = Tally()

    async def main() -> None:
        rng = random.Random(seed)

        async def one(rid: int) -> None:
            await _serve(rid, _asyncio_request, rid, tally, rng)
            progress.advance()

        await asyncio.gather(*(one(rid) for rid in range(requests)))

    asyncio.run(main())
    return tally, "tasks, call_soon/call_later, gather, wait_for timeouts"


async def _thread_request(
    rid: int, tally: Tally, pool: threads.ThreadPoolExecutor, rng: random.Random
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(rng.choice(_PAUSES))
    seen_id, seen_tenant = await loop.run_in_executor(pool, thread_job, rid)
    tally.check(rid, seen_id, "pooled thread")
    tally.check(_tenant_of(rid), seen_tenant, "tenant in pooled thread")
    tally.check(rid, current_id(), "back on the loop")


def _run_threads(requests: int, seed: int, progress: Progress) -> tuple[Tally, str]:
    tally = Tally()
    workers = 8

    async def main() -> None:
        rng = random.Random(seed)
        with threads.ThreadPoolExecutor(max_workers=workers) as pool:

            async def one(rid: int) -> None:
                await _serve(rid, _thread_request, rid, tally, pool, rng)
                progress.advance()

            await asyncio.gather(*(one(rid) for rid in range(requests)))

    asyncio.run(main())
    return tally, f"{workers} reused threads; every job tries to leak a store"


async def _process_request(rid: int, tally: Tally, pool: processes.ProcessPoolExecutor) -> int:
    loop = asyncio.get_running_loop()
    echoed, seen_id, seen_tenant, pid = await loop.run_in_executor(pool, process_job, rid)
    tally.check(rid, echoed, "job argument")
    tally.check(rid, seen_id, "worker process")
    tally.check(None, seen_tenant, "in-process-only storage stays home")
    tally.check(rid, current_id(), "back on the loop")
    return pid


def _run_processes(requests: int, seed: int, progress: Progress) -> tuple[Tally, str]:
    tally = Tally()
    workers = 2
    method = "spawn" if sys.platform != "linux" else "forkserver"
    if method not in multiprocessing.get_all_start_methods():
        method = "spawn"
    pids: set[int] = set()

    async def main() -> None:
        ctx = multiprocessing.get_context(method)
        with processes.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:

            async def one(rid: int) -> None:
                pids.add(await _serve(rid, _process_request, rid, tally, pool))
                progress.advance()

            await asyncio.gather(*(one(rid) for rid in range(requests)))

    asyncio.run(main())
    return tally, f"{len(pids)} worker processes ({method}); stores pickled per job"


register(
    Phase(
        "asyncio",
        "overlapping requests on one event loop: awaits, callbacks, gather, timeouts",
        _run_asyncio,
    )
)
register(Phase("threads", "requests hopping through a reused thread pool", _run_threads))
register(Phase("processes", "requests sending jobs to a process pool", _run_processes))
