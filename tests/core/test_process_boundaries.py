"""Process boundaries: cross-process storages through pools, forks and `processes.install()`."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, processes

# Cross-process storages are found by name in the worker, so they live at module level
# (spawn/forkserver workers re-import this module by its name).
XP: AsyncLocalStorage[Any] = AsyncLocalStorage(name="process-boundaries.xp", cross_process=True)
LOCAL_ONLY: AsyncLocalStorage[Any] = AsyncLocalStorage(name="process-boundaries.local")

# ------------------------------------------------------------------------ processes


def xp_job(tag: str) -> tuple[str, Any, Any]:
    return tag, XP.get_store(), LOCAL_ONLY.get_store()


def xp_leave_store(tag: str) -> int:
    XP.enter_with({"left": tag})
    return os.getpid()


def xp_pid_and_store() -> tuple[int, Any]:
    return os.getpid(), XP.get_store()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_cross_process_stores_travel_with_each_start_method(method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    ctx = multiprocessing.get_context(method)
    with processes.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        sent = XP.run({"req": 1}, LOCAL_ONLY.run, "never travels", pool.submit, xp_job, "a")
        assert sent.result(60) == ("a", {"req": 1}, None)
        pid = XP.run({"req": 2}, pool.submit, xp_leave_store, "b").result(60)
        # Same worker, next job: a clean context, nothing from the previous job.
        assert pool.submit(xp_pid_and_store).result(60) == (pid, None)
        assert XP.run({"req": 3}, pool.submit, xp_pid_and_store).result(60) == (pid, {"req": 3})


def test_multiprocessing_pool_drop_in_carries_stores() -> None:
    with processes.Pool(1, context=multiprocessing.get_context("fork")) as pool:
        got = XP.run("pooled", pool.map, xp_job, ["x", "y"])
        assert got == [("x", "pooled", None), ("y", "pooled", None)]
        assert pool.apply(xp_job, ("z",)) == ("z", None, None)


def test_a_worker_forked_during_a_request_does_not_inherit_it() -> None:
    ctx = multiprocessing.get_context("fork")
    pool = processes.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
    try:
        # The first submit forks the worker while both stores are visible.
        first = XP.run("req", LOCAL_ONLY.run, "local", pool.submit, os.getpid)
        first.result(60)
        assert pool.submit(xp_job, "later").result(60) == ("later", None, None)
    finally:
        pool.shutdown()


def test_an_unpicklable_store_fails_at_submit_naming_the_storage() -> None:
    with processes.ProcessPoolExecutor(max_workers=1) as pool:
        with pytest.raises(processes.StoreNotPicklableError, match=r"process-boundaries\.xp"):
            XP.run({"lock": threading.Lock()}, pool.submit, xp_job, "x")
        with pytest.raises(TypeError):  # it is also a TypeError
            XP.run(lambda: None, pool.submit, xp_job, "x")


def test_a_storage_the_worker_does_not_have_fails_with_unknown_storage_error() -> None:
    # Created at run time, not at import: a spawned worker cannot find it by name.
    late: AsyncLocalStorage[str] = AsyncLocalStorage(
        name="process-boundaries.created-late", cross_process=True
    )
    ctx = multiprocessing.get_context("spawn")
    with processes.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        job = late.run("x", pool.submit, xp_pid_and_store)
        with pytest.raises(
            processes.UnknownStorageError, match=r"process-boundaries\.created-late"
        ):
            job.result(60)


def _put_local_store(queue: Any) -> None:
    queue.put((LOCAL_ONLY.get_store(), XP.get_store()))


def test_a_plain_forked_process_does_not_inherit_the_active_request() -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_put_local_store, args=(queue,))  # no drop-in, no install
    XP.run("xp", LOCAL_ONLY.run, "local", child.start)
    try:
        assert queue.get(timeout=60) == (None, None)
    finally:
        child.join(60)


def test_drop_in_process_carries_only_cross_process_stores() -> None:
    queue = multiprocessing.get_context("fork").Queue()
    child = processes.Process(target=_put_local_store, args=(queue,))
    XP.run("xp", LOCAL_ONLY.run, "local", child.start)
    try:
        assert queue.get(timeout=60) == (None, "xp")
    finally:
        child.join(60)


def test_process_install_covers_the_stdlib_pool() -> None:
    was = processes.installed()
    processes.install()
    try:
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            assert XP.run("std", pool.submit, xp_job, "s").result(60) == ("s", "std", None)
            assert XP.run("map", lambda: list(pool.map(xp_job, ["m"]))) == [("m", "map", None)]
    finally:
        if not was:
            processes.uninstall()
