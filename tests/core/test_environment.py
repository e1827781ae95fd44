"""Environment variables act only through `asynclocal.enable_from_env()`.

Importing any module reads no environment variable: with ``ASYNCLOCAL_HOOKS`` and
``ASYNCLOCAL_DEBUG`` set (to good or bad values) every import succeeds and nothing
is tracked, patched or enabled. The explicit call enables what the variables ask
for; a value it does not understand warns and changes nothing, it never raises.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

import asynclocal
from asynclocal import debug, hooks
from asynclocal.errors import ConfigurationWarning

#: Every module a user imports; each must import cleanly under any environment.
MODULES = [
    "asynclocal",
    "asynclocal.debug",
    "asynclocal.errors",
    "asynclocal.hooks",
    "asynclocal.logging",
    "asynclocal.patterns",
    "asynclocal.patterns.timing",
    "asynclocal.processes",
    "asynclocal.propagation",
    "asynclocal.request",
    "asynclocal.testing",
    "asynclocal.threads",
    "asynclocal.transactions",
    "asynclocal.web.asgi",
    "asynclocal.web.wsgi",
]

_PROBE = """
import asyncio, importlib, sys, threading, concurrent.futures
thread_start = threading.Thread.start
submit = concurrent.futures.ThreadPoolExecutor.submit
loop_create_task = asyncio.BaseEventLoop.create_task
for name in sys.argv[1:]:
    importlib.import_module(name)
from asynclocal import debug, hooks
async def main():
    return hooks.execution_async_id()
print(
    hooks.enabled_hooks() == [],
    not hooks.installed(),
    not debug.enabled(),
    asyncio.run(main()) == 1,
    threading.Thread.start is thread_start,
    concurrent.futures.ThreadPoolExecutor.submit is submit,
    asyncio.BaseEventLoop.create_task is loop_create_task,
)
"""


# On free-threaded builds a third-party extension (greenlet, under SQLAlchemy's asyncio
# layer) may turn the GIL on; asynclocal's own modules keep it off (test_free_threading).
_GIL_WARNING_OPTIONS = ["-W", "ignore:The global interpreter lock (GIL) has been enabled"]


@pytest.mark.parametrize(
    "env",
    [
        {"ASYNCLOCAL_HOOKS": "1", "ASYNCLOCAL_DEBUG": "1"},
        {"ASYNCLOCAL_HOOKS": "trace"},
        {"ASYNCLOCAL_HOOKS": "bogus", "ASYNCLOCAL_DEBUG": "2"},
    ],
    ids=["on", "trace", "bad-values"],
)
def test_importing_reads_no_environment(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", *_GIL_WARNING_OPTIONS, "-c", _PROBE, *MODULES],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True"] * 7, proc.stdout


def test_enable_from_env_turns_on_what_is_asked_and_returns_it() -> None:
    assert asynclocal.enable_from_env({}) == []
    assert asynclocal.enable_from_env({"ASYNCLOCAL_HOOKS": "0", "ASYNCLOCAL_DEBUG": "0"}) == []
    try:
        got = asynclocal.enable_from_env({"ASYNCLOCAL_HOOKS": "1", "ASYNCLOCAL_DEBUG": "yes"})
        assert got == ["hooks", "debug"]
        assert len(hooks.enabled_hooks()) == 1
        assert debug.enabled()
    finally:
        for hook in hooks.enabled_hooks():
            hook.disable()
        debug.disable()
    try:
        assert asynclocal.enable_from_env({"ASYNCLOCAL_HOOKS": "trace"}) == ["hooks:trace"]
    finally:
        for hook in hooks.enabled_hooks():
            hook.disable()
    assert not hooks.installed()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ASYNCLOCAL_DEBUG": "2"}, "ASYNCLOCAL_DEBUG"),
        ({"ASYNCLOCAL_HOOKS": "verbose"}, "ASYNCLOCAL_HOOKS"),
    ],
)
def test_a_bad_value_warns_and_changes_nothing(env: dict[str, str], variable: str) -> None:
    with pytest.warns(ConfigurationWarning, match=variable) as caught:
        assert asynclocal.enable_from_env(env) == []
    assert len(caught) == 1
    assert "ignored" in str(caught[0].message)
    assert hooks.enabled_hooks() == []
    assert not hooks.installed()
    assert not debug.enabled()


def test_a_bad_value_next_to_a_good_one_still_enables_the_good_one() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = asynclocal.enable_from_env({"ASYNCLOCAL_HOOKS": "x", "ASYNCLOCAL_DEBUG": "1"})
            assert got == ["debug"]
        finally:
            debug.disable()
    assert [w.category for w in caught] == [ConfigurationWarning]
