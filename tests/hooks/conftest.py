"""Fixtures for the async_hooks and context-loss detector tests."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from asynclocal import debug, hooks

from .._optional import new_uvloop_loop

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": new_uvloop_loop,
}


def describe(type: str, resource: Any) -> str:
    """A readable label: the task's coroutine or the callback's function name."""
    if type == "Task":
        return f"Task {resource.get_coro().__qualname__}"
    if type in ("Immediate", "Timeout", "Executor"):
        return f"{type} {resource.callback.__name__}"
    return type


@dataclass
class Event:
    kind: str
    async_id: int
    thread: int
    type: str = ""
    trigger: int = 0
    # A weak reference: a hook holding resources would delay their collection.
    ref: Callable[[], Any] = lambda: None
    label: str = ""

    @property
    def resource(self) -> Any:
        return self.ref()


@dataclass
class Recorder:
    """Collects every hook event, with the thread it happened in."""

    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def init(self, async_id: int, type: str, trigger: int, resource: object) -> None:
        try:
            ref: Callable[[], Any] = weakref.ref(resource)
        except TypeError:
            ref = lambda: resource  # noqa: E731
        label = describe(type, resource)
        self._add(Event("init", async_id, threading.get_ident(), type, trigger, ref, label))

    def before(self, async_id: int) -> None:
        self._add(Event("before", async_id, threading.get_ident()))

    def after(self, async_id: int) -> None:
        self._add(Event("after", async_id, threading.get_ident()))

    def destroy(self, async_id: int) -> None:
        self._add(Event("destroy", async_id, threading.get_ident()))

    def promise_resolve(self, async_id: int) -> None:
        self._add(Event("promise_resolve", async_id, threading.get_ident()))

    def hook(self) -> hooks.AsyncHook:
        return hooks.create_hook(
            init=self.init,
            before=self.before,
            after=self.after,
            destroy=self.destroy,
            promise_resolve=self.promise_resolve,
        )

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def inits(self) -> dict[int, Event]:
        return {e.async_id: e for e in self.of("init")}


@pytest.fixture(autouse=True)
def _no_hook_left_enabled() -> Iterator[None]:
    """Every test starts and ends with nothing installed."""
    yield
    for hook in hooks.enabled_hooks():
        hook.disable()
    gc.collect()
    assert not hooks.installed()
    debug.disable()
    debug.clear_reports()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A `Recorder` whose hook is enabled for the test."""
    rec = Recorder()
    hook = rec.hook().enable()
    try:
        yield rec
    finally:
        hook.disable()


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on a new loop of each kind (the default loop and uvloop)."""
    factory = LOOP_FACTORIES[request.param]

    def run_on_loop(coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            loop = factory()
        except BaseException:  # skipped: no uvloop here
            coro.close()
            raise
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    return run_on_loop
