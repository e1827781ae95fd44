"""The objects that make asyncio work visible to hooks.

Each tracked piece of work gets a wrapper that owns its async id and emits the
events: a coroutine wrapper for tasks (every `send`/`throw` the task makes is one
step), a callable wrapper for loop callbacks and executor jobs, and a protocol
proxy for server connections. A wrapper emits `destroy` exactly once: when the
work finishes, or from `__del__` when it is dropped unrun (a cancelled handle,
a task collected while pending).
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import Callable, Generator
from contextvars import Token
from typing import Any

from .. import _async_ids
from .. import _async_ids as _ids
from .._async_ids import (
    emit_after,
    emit_before,
    emit_destroy,
    emit_init,
    emit_promise_resolve,
    frame_var,
    new_async_id,
)

__all__ = [
    "CallbackResource",
    "ConnectionFactory",
    "FutureWatch",
    "HookedCoroutine",
    "ProtocolResource",
]

_CancelledError = asyncio.CancelledError


def _safe_destroy(async_id: int) -> None:
    # Called from __del__, possibly during interpreter shutdown.
    try:
        emit_destroy(async_id)
    except Exception:  # pragma: no cover - shutdown only
        pass


class HookedCoroutine(collections.abc.Coroutine[Any, Any, Any]):
    """Wraps a task's coroutine so each step the task runs emits before/after.

    asyncio's C `Task` drives its coroutine with `send`/`throw`; one such call is
    one step (the start, and each resumption after an `await`). The wrapper sets
    the execution frame around the step, so `execution_async_id()` is the task's
    id inside it, and emits `promise_resolve` and `destroy` when the coroutine
    finishes (returns, raises, or is cancelled). Attribute reads it does not
    know (`cr_frame`, `__qualname__`, ...) go to the wrapped coroutine.
    """

    __slots__ = ("_async_id", "_coro", "_frame", "_state", "_trigger_id")

    def __init__(self, coro: collections.abc.Coroutine[Any, Any, Any], trigger_id: int) -> None:
        self._state = 0  # 0 created, 1 init emitted, 2 destroyed
        self._coro = coro
        self._async_id = new_async_id()
        self._trigger_id = trigger_id
        self._frame: _async_ids.Frame | None = None

    def _started(self, task: object) -> _async_ids.Frame:
        frame = self._frame = (self._async_id, self._trigger_id, task)
        if self._state == 0:
            self._state = 1
            emit_init(self._async_id, "Task", self._trigger_id, task)
        return frame

    def _end(self, exc: BaseException, token: Token[_async_ids.Frame]) -> None:
        # The coroutine returned or raised: the last step ends, then the task.
        async_id = self._async_id
        if _ids._promise_resolve and not isinstance(exc, _CancelledError):
            emit_promise_resolve(async_id)
        if _ids._after:
            emit_after(async_id)
        frame_var.reset(token)
        self._frame = None  # break the task -> coroutine -> frame -> task cycle
        if self._state != 2:
            self._state = 2
            if _ids._destroy:
                emit_destroy(async_id)

    def _destroy(self) -> None:
        self._frame = None  # break the task -> coroutine -> frame -> task cycle
        if self._state != 2:
            self._state = 2
            emit_destroy(self._async_id)

    def send(self, value: Any) -> Any:
        frame = self._frame
        if frame is None:
            # An eager task (3.12+) runs its first step inside create_task.
            frame = self._started(asyncio.current_task())
        token = frame_var.set(frame)
        async_id = self._async_id
        if _ids._before:
            emit_before(async_id)
        try:
            result = self._coro.send(value)
        except BaseException as exc:
            self._end(exc, token)
            raise
        if _ids._after:
            emit_after(async_id)
        frame_var.reset(token)
        return result

    def __next__(self) -> Any:
        # The C Task sends None through tp_iternext: same body as send(), one frame less.
        frame = self._frame
        if frame is None:
            # An eager task (3.12+) runs its first step inside create_task.
            frame = self._started(asyncio.current_task())
        token = frame_var.set(frame)
        async_id = self._async_id
        if _ids._before:
            emit_before(async_id)
        try:
            result = self._coro.send(None)
        except BaseException as exc:
            self._end(exc, token)
            raise
        if _ids._after:
            emit_after(async_id)
        frame_var.reset(token)
        return result

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        frame = self._frame
        if frame is None:
            frame = self._started(asyncio.current_task())
        token = frame_var.set(frame)
        async_id = self._async_id
        if _ids._before:
            emit_before(async_id)
        try:
            if val is None and tb is None:
                result = self._coro.throw(typ)
            else:  # pragma: no cover - legacy 3-argument form
                result = self._coro.throw(typ, val, tb)
        except BaseException as exc:
            self._end(exc, token)
            raise
        if _ids._after:
            emit_after(async_id)
        frame_var.reset(token)
        return result

    def close(self) -> None:
        try:
            self._coro.close()
        finally:
            if self._state == 1:
                self._destroy()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()

    def __getattr__(self, name: str) -> Any:
        if name in HookedCoroutine.__slots__:
            raise AttributeError(name)  # unset slot: never recurse
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)

    def __del__(self) -> None:
        if self._state == 1:
            self._state = 2
            _safe_destroy(self._async_id)


class CallbackResource:
    """The resource of one loop callback (`"Immediate"`, `"Timeout"`) or executor job.

    The loop (or executor) calls it instead of the callback: it sets the
    execution frame, emits before, runs the callback, emits after and destroy.
    Apps may attach attributes to it (it is what `execution_async_resource()`
    returns inside the callback). `callback` is the wrapped callable.
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_destroyed",
        "async_id",
        "callback",
        "trigger_async_id",
        "type",
    )

    def __init__(self, type: str, callback: Callable[..., Any]) -> None:
        self._destroyed = False
        self.type = type
        self.callback = callback
        self.async_id = async_id = new_async_id()
        self.trigger_async_id = trigger = frame_var.get()[0]
        if _ids._init:
            emit_init(async_id, type, trigger, self)

    def __call__(self, *args: Any) -> Any:
        # The hot path of every tracked callback: emits are skipped without a
        # call when no enabled hook has that callback.
        async_id = self.async_id
        token = frame_var.set((async_id, self.trigger_async_id, self))
        if _ids._before:
            emit_before(async_id)
        try:
            return self.callback(*args)
        finally:
            if _ids._after:
                emit_after(async_id)
            frame_var.reset(token)
            if not self._destroyed:
                self._destroyed = True
                if _ids._destroy:
                    emit_destroy(async_id)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.callback

    def __repr__(self) -> str:
        return f"<{self.type} async_id={self.async_id} {self.callback!r}>"

    def __del__(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            _safe_destroy(self.async_id)


class FutureWatch:
    """A done-callback that gives a `loop.create_future()` future its events.

    The future schedules its callbacks through `loop.call_soon` synchronously
    when it gets its result; the patched `call_soon` recognises this object and
    calls `resolved()` right there, so `promise_resolve` fires at the moment the
    result is set, followed by `destroy`. Dropped unresolved, it emits `destroy`.
    """

    __slots__ = ("_done", "async_id")

    def __init__(self, async_id: int) -> None:
        self.async_id = async_id
        self._done = False

    def resolved(self, fut: asyncio.Future[Any]) -> None:
        if self._done:
            return
        self._done = True
        if not fut.cancelled():
            emit_promise_resolve(self.async_id)
        emit_destroy(self.async_id)

    __call__ = resolved  # when scheduled after the hooks were disabled

    def __del__(self) -> None:
        if not self._done:
            self._done = True
            _safe_destroy(self.async_id)


class ProtocolResource(asyncio.Protocol):
    """The `"TCPConnection"` resource: a proxy around one server connection's protocol.

    The transport calls the proxy; each protocol callback (`connection_made`,
    `data_received`, `eof_received`, `connection_lost`, flow control) is one step
    of the connection, run with the connection as the execution resource, so a
    handler task started in `connection_made` (as `asyncio.start_server` does)
    has the connection as its trigger. `destroy` follows `connection_lost`.
    `protocol` is the wrapped protocol; apps may attach attributes.
    """

    type = "TCPConnection"

    def __init__(self, protocol: asyncio.BaseProtocol, trigger_id: int) -> None:
        self.protocol = protocol
        self.async_id = new_async_id()
        self.trigger_async_id = trigger_id
        self._destroyed = False
        emit_init(self.async_id, self.type, trigger_id, self)

    def _step(self, fn: Callable[..., Any], *args: Any) -> Any:
        async_id = self.async_id
        token = frame_var.set((async_id, self.trigger_async_id, self))
        emit_before(async_id)
        try:
            return fn(*args)
        finally:
            emit_after(async_id)
            frame_var.reset(token)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._step(self.protocol.connection_made, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._step(self.protocol.connection_lost, exc)
        finally:
            if not self._destroyed:
                self._destroyed = True
                emit_destroy(self.async_id)

    def pause_writing(self) -> None:
        self._step(self.protocol.pause_writing)

    def resume_writing(self) -> None:
        self._step(self.protocol.resume_writing)

    def data_received(self, data: bytes) -> None:
        self._step(self.protocol.data_received, data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        result: bool | None = self._step(self.protocol.eof_received)  # type: ignore[attr-defined]
        return result

    def __getattr__(self, name: str) -> Any:
        if name in ("protocol", "async_id", "trigger_async_id", "_destroyed"):
            raise AttributeError(name)  # not set yet: never recurse
        return getattr(self.protocol, name)

    def __repr__(self) -> str:
        return f"<TCPConnection async_id={self.async_id} {self.protocol!r}>"

    def __del__(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            _safe_destroy(self.async_id)


class BufferedProtocolResource(ProtocolResource, asyncio.BufferedProtocol):
    """`ProtocolResource` for a `BufferedProtocol` (transports check the type)."""

    def get_buffer(self, sizehint: int) -> Any:
        return self._step(self.protocol.get_buffer, sizehint)  # type: ignore[attr-defined]

    def buffer_updated(self, nbytes: int) -> None:
        self._step(self.protocol.buffer_updated, nbytes)  # type: ignore[attr-defined]


class ConnectionFactory:
    """Wraps a server's protocol factory so each accepted connection is a resource.

    The trigger of every connection is the code that created the server.
    """

    __slots__ = ("factory", "trigger_async_id")

    def __init__(self, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self.factory = factory
        self.trigger_async_id = _async_ids.current_execution_async_id()

    def __call__(self) -> asyncio.BaseProtocol:
        protocol = self.factory()
        if isinstance(protocol, asyncio.BufferedProtocol):
            return BufferedProtocolResource(protocol, self.trigger_async_id)
        return ProtocolResource(protocol, self.trigger_async_id)
