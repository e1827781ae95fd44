"""Run in a subprocess by test_gevent.py: monkey-patches, so it must stay out of pytest's process.

Prints one JSON object: check name -> list of [expected, seen] pairs.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.threadpool  # noqa: E402

import asynclocal.threads  # noqa: E402
from asynclocal import AsyncLocalStorage  # noqa: E402
from asynclocal.integrations import gevent as al_gevent  # noqa: E402

als: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.concurrency.gevent")
Pairs = list[list[Any]]
results: dict[str, Pairs] = {}


def check(fn: Callable[[], Pairs]) -> Callable[[], Pairs]:
    try:
        results[fn.__name__] = fn()
    except Exception as exc:  # reported as a failed check
        results[fn.__name__] = [["no exception", f"{type(exc).__name__}: {exc}"]]
    return fn


def jitter() -> None:
    gevent.sleep(random.uniform(0, 0.002))


def seen(expected: str | None) -> list[Any]:
    return [expected, als.get_store()]


@check
def native_spawn_starts_empty() -> Pairs:
    # The gap this integration fills: documented, not a guarantee of ours.
    return [[None, als.run("req", lambda: gevent.spawn(als.get_store).get())]]


@check
def helper_spawn_interleaved_requests() -> Pairs:
    out: Pairs = []

    def child(expected: str) -> None:
        jitter()
        out.append(seen(expected))

    def request(i: int) -> None:
        jitter()
        children = [al_gevent.spawn(child, f"req-{i}") for _ in range(3)]
        children.append(al_gevent.spawn_later(0.001, child, f"req-{i}"))
        gevent.joinall(children, raise_error=True)

    requests = [als.run(f"req-{i}", al_gevent.spawn, request, i) for i in range(50)]
    gevent.joinall(requests, raise_error=True)
    assert len(out) == 200, len(out)
    return out


@check
def greenlet_class_captures_at_start() -> Pairs:
    g = als.run("created", al_gevent.Greenlet, als.get_store)
    als.run("started", g.start)
    later = al_gevent.Greenlet(als.get_store)
    als.run("started-later", later.start_later, 0.001)
    return [["started", g.get(timeout=5)], ["started-later", later.get(timeout=5)]]


@check
def greenlet_changes_stay_in_the_greenlet() -> Pairs:
    def changer() -> str | None:
        als.enter_with("child-only")
        jitter()
        return als.get_store()

    def sibling() -> str | None:
        gevent.sleep(0.005)
        return als.get_store()

    def parent() -> Pairs:
        a, b = al_gevent.spawn(changer), al_gevent.spawn(sibling)
        gevent.joinall([a, b], raise_error=True)
        return [["child-only", a.value], ["parent", b.value], seen("parent")]

    return als.run("parent", parent)


@check
def installed_gevent_apis() -> Pairs:
    al_gevent.install()
    al_gevent.install()  # idempotent
    try:
        out: Pairs = []
        pool = gevent.pool.Pool(2)
        group = gevent.pool.Group()
        tpool = gevent.threadpool.ThreadPool(2)
        executor = gevent.threadpool.ThreadPoolExecutor(2)
        raw_done = gevent.event.AsyncResult()

        def request(i: int) -> None:
            exp = f"req-{i}"
            jitter()
            out.append([exp, gevent.spawn(als.get_store).get()])
            out.append([exp, gevent.spawn_later(0.001, als.get_store).get()])
            out.append([exp, pool.spawn(als.get_store).get()])
            out.append([exp, group.spawn(als.get_store).get()])
            out.append([exp, pool.apply(als.get_store)])
            out.append([exp, pool.apply_async(als.get_store).get()])
            out.extend([exp, v] for v in pool.map(lambda _: als.get_store(), range(3)))
            out.extend([exp, v] for v in pool.imap_unordered(lambda _: als.get_store(), range(3)))
            out.append([exp, tpool.spawn(als.get_store).get()])
            out.append([exp, tpool.apply(als.get_store)])
            out.append([exp, executor.submit(als.get_store).result()])

        full = gevent.pool.Pool(1)
        blocker = full.spawn(gevent.sleep, 0.01)
        # A full pool hands apply_async to a helper greenlet: still the caller's context.
        pending = als.run("full-pool", full.apply_async, als.get_store)
        als.run("raw", gevent.spawn_raw, lambda: raw_done.set(als.get_store()))
        gevent.joinall([als.run(f"req-{i}", al_gevent.spawn, request, i) for i in range(10)])
        blocker.join()
        out.append(["full-pool", pending.get(timeout=5)])
        out.append(["raw", raw_done.get(timeout=5)])

        # reused pool threads never show a previous job's store
        def dirty() -> None:
            als.enter_with("junk")

        for _ in range(4):
            als.run("dirty", tpool.apply, dirty)
        out.extend([None, tpool.apply(als.get_store)] for _ in range(4))
        executor.shutdown()
        tpool.kill()
        return out
    finally:
        al_gevent.uninstall()


@check
def uninstall_restores_gevent() -> Pairs:
    al_gevent.install()
    al_gevent.uninstall()
    return [
        [None, als.run("req", lambda: gevent.spawn(als.get_store).get())],
        [True, gevent.pool.Group.greenlet_class is gevent.Greenlet],
    ]


@check
def monkey_patched_threads_with_asynclocal_threads() -> Pairs:
    asynclocal.threads.install()
    try:
        out: Pairs = []

        def request(i: int) -> None:
            box: list[Any] = []
            t = threading.Thread(target=lambda: box.append(als.get_store()))
            t.start()
            t.join()
            out.append([f"req-{i}", box[0]])

        gevent.joinall([als.run(f"req-{i}", al_gevent.spawn, request, i) for i in range(10)])
        return out
    finally:
        asynclocal.threads.uninstall()


@check
def helpers_validate_input() -> Pairs:
    out: Pairs = []
    for helper in (al_gevent.spawn, al_gevent.spawn_raw):
        try:
            helper("not callable")  # type: ignore[arg-type]
        except TypeError as exc:
            out.append([True, "callable" in str(exc)])
        else:
            out.append(["TypeError", "nothing raised"])
    return out


json.dump(results, sys.stdout)
