"""`asynclocal.processes`: cross-process stores in process pools, fork and spawn.

Job functions and storages live in `tests.core._proc_jobs` so spawned workers can
import them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.pool
import pickle
import sys
import threading
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, processes
from tests.core import _proc_jobs as jobs

# forkserver: the default on Linux from Python 3.14; tested on every version.
METHODS = [
    m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()
]
FRESH_IMPORT_METHODS = [m for m in ("spawn", "forkserver") if m in METHODS]


def _in_request(store: dict[str, Any], fn: Any, *args: Any) -> Any:
    """Call `fn` inside a request: both cross-process stores and the local one set."""
    inner: Any = jobs.tenant.run
    return jobs.request.run(
        store, inner, f"tenant-{store['id']}", jobs.local_only.run, "local", fn, *args
    )


@pytest.mark.parametrize("method", METHODS)
def test_process_pool_executor_carries_stores_and_keeps_jobs_clean(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with processes.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        futures = [_in_request({"id": i}, pool.submit, jobs.read_stores, i) for i in range(6)]
        results = [f.result(60) for f in futures]
        for i, (tag, req, tenant, local, _pid) in enumerate(results):
            assert (tag, req, tenant) == (i, {"id": i}, f"tenant-{i}")
            assert local == "none"  # storages without cross_process never travel

        # A job that leaves stores behind; the next job on the same worker is clean.
        leaker_pid = _in_request({"id": 99}, pool.submit, jobs.leave_stores_behind, "x").result(60)
        _, req, tenant, local, pid = pool.submit(jobs.read_stores).result(60)
        assert pid == leaker_pid
        assert (req, tenant, local) == (None, None, "none")

        # The worker got a copy: mutations there never reach the caller's store.
        mine = {"id": 5}
        theirs = _in_request(mine, pool.submit, jobs.mutate_store, "touched").result(60)
        assert theirs == {"id": 5, "touched": True}
        assert mine == {"id": 5}

        assert [r[1] for r in jobs.request.run({"id": 7}, pool.map, jobs.read_stores, [1, 2])] == [
            {"id": 7},
            {"id": 7},
        ]


@pytest.mark.parametrize("method", METHODS)
def test_multiprocessing_pool_carries_stores_and_keeps_jobs_clean(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with processes.Pool(1, context=ctx) as pool:
        assert _in_request({"id": 1}, pool.apply, jobs.read_stores, (1,))[1:4] == (
            {"id": 1},
            "tenant-1",
            "none",
        )
        mapped = jobs.request.run({"id": 2}, pool.map, jobs.read_stores, [1, 2, 3])
        assert [r[1] for r in mapped] == [{"id": 2}] * 3
        star = jobs.request.run({"id": 3}, pool.starmap, jobs.add, [(1, 2), (3, 4)])
        assert star == [(3, 3), (7, 3)]
        unordered = jobs.request.run({"id": 4}, pool.imap_unordered, jobs.read_stores, [1, 2])
        assert sorted(r[0] for r in unordered) == [1, 2]
        assert [r[1] for r in jobs.request.run({"id": 5}, pool.imap, jobs.read_stores, [1])] == [
            {"id": 5}
        ]
        async_result = _in_request({"id": 6}, pool.apply_async, jobs.read_stores, (6,))
        assert async_result.get(60)[1] == {"id": 6}

        _in_request({"id": 8}, pool.apply, jobs.leave_stores_behind, ("y",))
        assert pool.apply(jobs.read_stores)[1:4] == (None, None, "none")
        pool.close()
        pool.join()


def test_unpicklable_store_fails_at_submit_naming_the_storage() -> None:
    ctx = multiprocessing.get_context(METHODS[0])
    with processes.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        bad = {"id": 1, "lock": threading.Lock()}
        with pytest.raises(processes.StoreNotPicklableError, match=r"tests\.core\.request") as info:
            jobs.request.run(bad, pool.submit, jobs.read_stores)
        assert isinstance(info.value, TypeError)
    with (
        processes.Pool(1, context=ctx) as mp_pool,
        pytest.raises(processes.StoreNotPicklableError, match=r"tests\.core\.request"),
    ):
        jobs.request.run(bad, mp_pool.apply_async, jobs.read_stores)


@pytest.mark.skipif("fork" not in METHODS, reason="needs the fork start method")
def test_worker_forked_during_a_request_does_not_inherit_it() -> None:
    # The plain pool (nothing installed) forks its worker lazily, from inside the
    # request that submits the first job; the fork handler clears inherited stores.
    assert not processes.installed()
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        _, req, tenant, local, _ = _in_request({"id": 1}, pool.submit, jobs.read_stores).result(60)
    assert (req, tenant, local) == (None, None, "none")


@pytest.mark.skipif("fork" not in METHODS, reason="needs the fork start method")
def test_drop_in_process_sees_stores_of_the_caller_of_start() -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = processes.Process(target=_put_stores, args=(queue,))
    _in_request({"id": 3}, proc.start)
    result = queue.get(timeout=60)
    proc.join(60)
    assert result[1:4] == ({"id": 3}, "tenant-3", "none")


def _put_stores(queue: Any) -> None:
    queue.put(jobs.read_stores())


@pytest.mark.usefixtures("processes_installed")
@pytest.mark.parametrize("method", METHODS)
def test_install_makes_standard_pools_carry_stores(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        assert _in_request({"id": 1}, pool.submit, jobs.read_stores).result(60)[1:4] == (
            {"id": 1},
            "tenant-1",
            "none",
        )
        assert pool.submit(jobs.read_stores).result(60)[1] is None
    with multiprocessing.pool.Pool(1, context=ctx) as mp_pool:
        assert jobs.request.run({"id": 2}, mp_pool.apply, jobs.read_stores)[1] == {"id": 2}
        assert jobs.request.run({"id": 3}, mp_pool.map, jobs.read_stores, [1])[0][1] == {"id": 3}


def test_install_is_idempotent_and_reversible() -> None:
    assert not processes.installed()
    original = concurrent.futures.ProcessPoolExecutor.submit
    processes.install()
    processes.install()
    assert processes.installed()
    assert concurrent.futures.ProcessPoolExecutor.submit is not original
    processes.uninstall()
    processes.uninstall()
    assert not processes.installed()
    assert concurrent.futures.ProcessPoolExecutor.submit is original


def test_with_stores_is_picklable_and_runs_in_a_clean_context() -> None:
    wrapped = jobs.request.run({"id": 4}, processes.with_stores, jobs.read_stores)
    clone = pickle.loads(pickle.dumps(wrapped))
    # Only the stores it was sent: not the caller's local (or any other) store.
    assert jobs.local_only.run("here", clone, 1)[1:4] == ({"id": 4}, None, "none")
    assert processes.capture() == ()
    with pytest.raises(TypeError, match="expected a callable"):
        processes.with_stores(3)  # type: ignore[arg-type]


def test_unknown_storage_in_the_worker_names_it() -> None:
    payload = (("tests.core.no-such-storage", pickle.dumps(1)),)
    with pytest.raises(processes.UnknownStorageError, match="no-such-storage"):
        processes.with_stores(jobs.read_stores, payload)()


@pytest.mark.skipif(sys.platform == "win32", reason="fork only")
def test_capture_skips_unset_storages() -> None:
    assert processes.capture() == ()
    payload = jobs.tenant.run("t", processes.capture)
    assert [name for name, _ in payload] == ["tests.core.tenant"]


@pytest.mark.parametrize("method", FRESH_IMPORT_METHODS)
def test_a_storage_the_worker_cannot_import_fails_saying_so(method: str) -> None:
    # Created in a test function, not at import time: a fresh worker never has it.
    made_here: AsyncLocalStorage[str] = AsyncLocalStorage(
        name=f"tests.core.made-at-runtime-{method}", cross_process=True
    )
    ctx = multiprocessing.get_context(method)
    with processes.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        future = made_here.run("x", pool.submit, jobs.read_stores, 1)
        with pytest.raises(processes.UnknownStorageError) as info:
            future.result(timeout=120)
    message = str(info.value)
    assert f"tests.core.made-at-runtime-{method}" in message
    assert "not importable in the worker" in message
    assert "forkserver" in message


@pytest.mark.skipif(sys.version_info < (3, 14), reason="forkserver is the Linux default from 3.14")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux default start method")
def test_the_default_start_method_carries_stores() -> None:  # pragma: no cover - 3.14+
    assert multiprocessing.get_start_method() == "forkserver"
    with processes.ProcessPoolExecutor(max_workers=1) as pool:
        got = _in_request({"id": 14}, lambda: pool.submit(jobs.read_stores, 2).result(120))
    assert got[:4] == (2, {"id": 14}, "tenant-14", "none")
