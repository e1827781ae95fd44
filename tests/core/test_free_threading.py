"""Free-threaded CPython (3.13t+) and subinterpreters.

The GIL checks only mean something on a free-threaded build and are skipped elsewhere
with that reason; the race test runs on every interpreter (with the GIL it checks the
same guarantee, with fewer interleavings).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage
from asynclocal._accel import PURE_PYTHON_ENV
from asynclocal._storage import SPEEDUPS

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
needs_free_threading = pytest.mark.skipif(
    not FREE_THREADED, reason="needs a free-threaded build of CPython (3.13t or later)"
)
CORE_TESTS = Path(__file__).resolve().parent


def _child_env() -> dict[str, str]:
    # PYTHON_GIL=1 (or 0) would force the answer these tests check.
    return {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}


# Imports every asynclocal module whose imports stay within the stdlib and asynclocal
# (third-party imports are refused, so a third-party extension cannot turn the GIL on).
IMPORT_ALL = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys, warnings

    warnings.simplefilter("error", RuntimeWarning)

    class NoThirdParty(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top == "asynclocal" or top in sys.stdlib_module_names or top.startswith("_"):
                return None
            raise ModuleNotFoundError(f"third-party {name} refused", name=name)

    def refused_third_party(exc):
        while exc is not None:
            name = getattr(exc, "name", None) or ""
            if isinstance(exc, ModuleNotFoundError) and not name.startswith("asynclocal"):
                return True
            exc = exc.__cause__ or exc.__context__
        return False

    sys.meta_path.insert(0, NoThirdParty())
    import asynclocal

    imported, refused = [], []
    for info in pkgutil.walk_packages(asynclocal.__path__, "asynclocal."):
        if info.name.startswith("asynclocal._demo"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            if not refused_third_party(exc):
                raise
            refused.append(info.name)
        else:
            imported.append(info.name)
    print("imported", *imported)
    print("gil", sys._is_gil_enabled())
    """
)


@needs_free_threading
def test_importing_every_stdlib_only_module_keeps_the_gil_disabled() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "global interpreter lock" not in out.stderr.lower()
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    imported = set(lines["imported"].split())
    for package in (
        "asynclocal.threads",
        "asynclocal.processes",
        "asynclocal.hooks",
        "asynclocal.debug",
        "asynclocal.patterns",
        "asynclocal.request",
        "asynclocal.propagation",
        "asynclocal.logging",
        "asynclocal.web",
        "asynclocal.integrations",
    ):
        assert package in imported
    if os.environ.get(PURE_PYTHON_ENV, "") in ("", "0"):
        assert SPEEDUPS  # the C accelerator itself was among the imports
    assert lines["gil"] == "False"


@needs_free_threading
def test_thread_pool_and_isolation_experiments_pass_with_the_gil_off() -> None:
    # The GIL, once a module turns it on, stays on: checking at the end covers the run.
    code = textwrap.dedent(
        f"""
        import sys, pytest
        rc = pytest.main([{str(CORE_TESTS / "test_threads.py")!r},
                          {str(CORE_TESTS / "test_isolation.py")!r},
                          "-q", "-p", "no:cacheprovider", "-p", "no:randomly"])
        if sys._is_gil_enabled():
            print("GIL ENABLED")
            sys.exit(99)
        sys.exit(int(rc))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=CORE_TESTS.parent.parent,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_run_and_get_store_racing_disable_never_see_a_foreign_store() -> None:
    default = object()
    als: AsyncLocalStorage[object] = AsyncLocalStorage(default=default)
    workers, rounds = 8, 3_000
    start = threading.Barrier(workers + 1)
    stop = threading.Event()
    errors: list[str] = []

    def check(mine: object) -> None:
        for _ in range(3):
            seen = als.get_store()
            # disable() in another thread may hide the store: then the default shows.
            if seen is not mine and seen is not default:
                errors.append(f"foreign store {seen!r}")

    def worker(n: int) -> None:
        start.wait()
        for i in range(rounds):
            mine = (n, i)
            als.run(mine, check, mine)
            if als.get_store() is not default:
                errors.append("a store outlived its run()")
            als.exit(check, default)

    def disabler() -> None:
        start.wait()
        while not stop.is_set():
            als.disable()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    chaos = threading.Thread(target=disabler)
    for t in [*threads, chaos]:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    chaos.join(30)
    assert not any(t.is_alive() for t in [*threads, chaos])
    assert errors == []


def test_default_rebinding_racing_reads_never_crashes() -> None:
    # `_default` is the other field the C accelerator reads; a writer swapping it must
    # never free an object a reader is about to return.
    als: AsyncLocalStorage[Any] = AsyncLocalStorage(default="d0")
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            value = als.exit(als.get_store)
            if not (isinstance(value, str) and value.startswith("d")):
                errors.append(repr(value))

    def writer() -> None:
        for i in range(20_000):
            als._default = f"d{i}"
            als.disable()  # the new ContextVar takes the new default

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    writer()
    stop.set()
    for t in readers:
        t.join(30)
    assert errors == []


SUBINTERPRETER = textwrap.dedent(
    """
    import asynclocal._storage as s
    from asynclocal import AsyncLocalStorage
    assert s.SPEEDUPS is EXPECT_SPEEDUPS, s.SPEEDUPS
    als = AsyncLocalStorage()
    assert als.run("inner", als.get_store) == "inner"
    assert als.get_store() is None
    snapshot = als.run("snap", als.snapshot)
    assert snapshot(als.get_store) == "snap"
    assert type(snapshot).__name__ == ("ContextRunner" if EXPECT_SPEEDUPS else "function")
    """
)


def _run_in_isolated_interpreter(code: str) -> str | None:
    """Run `code` in a subinterpreter with its own GIL; the error text, or None."""
    try:
        import _interpreters  # type: ignore[import-not-found]  # 3.13+
    except ImportError:
        import _xxsubinterpreters  # type: ignore[import-not-found]  # 3.12

        iid = _xxsubinterpreters.create(isolated=True)
        try:
            _xxsubinterpreters.run_string(iid, code)
        except _xxsubinterpreters.RunFailedError as exc:
            return str(exc)
        finally:
            _xxsubinterpreters.destroy(iid)
        return None
    iid = _interpreters.create("isolated")
    try:
        failure = _interpreters.run_string(iid, code)
    finally:
        _interpreters.destroy(iid)
    return None if failure is None else str(failure.formatted)


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="subinterpreters with their own GIL need 3.12+"
)
def test_an_isolated_subinterpreter_loads_the_accelerator() -> None:
    # An isolated interpreter (own GIL, strict extension checks) refuses extensions that
    # do not declare per-interpreter support; run it twice to exercise re-initialisation.
    code = f"EXPECT_SPEEDUPS = {SPEEDUPS!r}\n" + SUBINTERPRETER
    assert _run_in_isolated_interpreter(code) is None
    assert _run_in_isolated_interpreter(code) is None
