"""Per-request timing of nested calls (a ``@LogTimeTaken`` decorator), with ``Server-Timing``.

::

    @timed                      # name defaults to the function's qualified name
    async def list_rooms(): ...

    @timed("repository.rooms")
    def fetch_rooms(): ...

    with time_block("render"): ...

Each timed call inside a request records a `Span` (name, path from the
outermost timed call, start offset, duration, error). The current span lives
in a `ContextVar` holding an immutable `Span`: a child task copies its
parent's context, so concurrent children each hang their spans under the
parent without touching the parent's (or a sibling's) stack. Outside a request,
timed functions just run (nothing is recorded).

Nothing leaves the process unless asked for. Span names are internal function
names, so the ``Server-Timing`` header (which every client can read) and the
summary log line are both off by default; turn them on explicitly::

    from asynclocal.patterns import timing

    timing.configure(server_timing=True, summary_level=logging.INFO)
    timing.configure(server_timing=lambda ctx: ctx.client in INTERNAL)  # some clients only

With either on, the first timed call of a request registers, through
``ctx.on_response``, a callback that adds the header and logs the summary (logger
``asynclocal.timing``) when the response starts. With both off, spans are still
recorded: read them with `timeline()`, or call `server_timing_header()` /
`log_summary()` yourself.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from ..errors import ConfigurationError
from ..request._context import RequestContext, request_storage

__all__ = [
    "Span",
    "Timeline",
    "TimingSettings",
    "configure",
    "log_summary",
    "server_timing_header",
    "time_block",
    "timed",
    "timeline",
    "timing_settings",
]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("asynclocal.timing")

_KEY = "asynclocal.timing"
#: Most entries put in one ``Server-Timing`` header; the total is always added.
MAX_HEADER_ENTRIES = 30
#: Most spans kept per request (a timed call in a hot loop must not grow memory without bound).
MAX_SPANS = 1000


@dataclass(frozen=True)
class TimingSettings:
    """What timed requests send out: both off unless `configure` turned them on.

    `server_timing`: add a ``Server-Timing`` header to the response (True), or only
    to requests for which the predicate returns True (it gets the `RequestContext`;
    one that raises sends nothing). `summary_level`: log the span tree at this level
    on ``asynclocal.timing`` when the response starts (None: no log).
    """

    server_timing: bool | Callable[[RequestContext], bool] = False
    summary_level: int | None = None

    @property
    def reports(self) -> bool:
        """Whether anything is sent or logged at the end of a request."""
        return self.server_timing is not False or self.summary_level is not None


_settings = TimingSettings()


def configure(
    *,
    server_timing: bool | Callable[[RequestContext], bool] = False,
    summary_level: int | None = None,
) -> TimingSettings:
    """Choose what timed requests send out (process-wide); return the previous settings.

    Each call replaces both settings: ``configure()`` turns everything off again,
    and ``configure(**dataclasses.asdict(previous))`` restores earlier ones. Takes
    effect for requests whose first timed call comes afterwards.

    Raises:
        ConfigurationError: `server_timing` is not a bool or a callable, or
            `summary_level` is not an int logging level or None.
    """
    global _settings
    if not isinstance(server_timing, bool) and not callable(server_timing):
        raise ConfigurationError(
            "timing.configure(server_timing=...) takes True, False or a predicate "
            f"(RequestContext) -> bool, got {type(server_timing).__name__}"
        )
    if summary_level is not None and (
        isinstance(summary_level, bool) or not isinstance(summary_level, int)
    ):
        raise ConfigurationError(
            "timing.configure(summary_level=...) takes a logging level such as "
            f"logging.INFO, or None, got {summary_level!r:.40}"
        )
    previous, _settings = _settings, TimingSettings(server_timing, summary_level)
    return previous


def timing_settings() -> TimingSettings:
    """The settings in effect (see `configure`)."""
    return _settings


@dataclass(frozen=True)
class Span:
    """One timed call. `path` runs from the request's outermost timed call to this one."""

    name: str
    path: tuple[str, ...]
    start: float
    duration: float
    error: str | None = None

    @property
    def depth(self) -> int:
        """0 for an outermost call, 1 for a call made inside it, and so on."""
        return len(self.path) - 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (milliseconds)."""
        return {
            "name": self.name,
            "path": list(self.path),
            "depth": self.depth,
            "start_ms": round(self.start * 1000, 3),
            "duration_ms": round(self.duration * 1000, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class _Frame:
    timeline: Timeline
    path: tuple[str, ...]


_current: ContextVar[_Frame | None] = ContextVar("asynclocal.timing.frame", default=None)


class Timeline:
    """The spans of one request, in completion order (thread- and task-safe)."""

    def __init__(self, ctx: RequestContext) -> None:
        self._origin = ctx.started_monotonic
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._reported = False
        #: Spans not kept because the request already had `MAX_SPANS`.
        self.dropped = 0
        self._ctx_repr = f"{ctx.method} {ctx.path}".strip() or ctx.request_id
        self._request_id = ctx.request_id

    def _add(self, span: Span) -> None:
        with self._lock:
            if len(self._spans) < MAX_SPANS:
                self._spans.append(span)
            else:
                self.dropped += 1

    @property
    def spans(self) -> list[Span]:
        """The finished spans, ordered by start time."""
        with self._lock:
            return sorted(self._spans, key=lambda s: s.start)

    def total(self) -> float:
        """Seconds from the request's start to now."""
        return time.perf_counter() - self._origin

    def _claim_report(self) -> bool:
        with self._lock:
            first, self._reported = not self._reported, True
            return first


def timeline() -> Timeline | None:
    """The current request's `Timeline`, or None outside a request or before any timed call."""
    ctx = request_storage.get_store()
    if ctx is None:
        return None
    found = ctx.get(_KEY)
    return found if isinstance(found, Timeline) else None


def _timeline_for(ctx: RequestContext) -> Timeline:
    found = ctx.get(_KEY)
    if isinstance(found, Timeline):
        return found
    fresh = Timeline(ctx)
    kept = ctx.set_if_absent(_KEY, fresh)
    settings = _settings
    if kept is fresh and settings.reports:
        ctx.on_response(functools.partial(_on_response, fresh, settings, weakref.ref(ctx)))
    return cast(Timeline, kept)


def _on_response(
    tl: Timeline, settings: TimingSettings, ctx_ref: weakref.ref[RequestContext]
) -> list[tuple[str, str]]:
    if settings.summary_level is not None and tl._claim_report():
        log_summary(tl, settings.summary_level)
    wanted = settings.server_timing
    if callable(wanted):
        ctx = ctx_ref()
        try:
            wanted = ctx is not None and bool(wanted(ctx))
        except Exception:  # a broken predicate sends nothing, never breaks the response
            wanted = False
    return [("Server-Timing", server_timing_header(tl))] if wanted else []


_TOKEN_JUNK = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _metric_name(name: str) -> str:
    return _TOKEN_JUNK.sub("_", name).strip("_") or "span"


def _quoted(text: str) -> str:
    clean = "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')
    return f'"{clean}"'


def server_timing_header(tl: Timeline | None = None) -> str:
    """The ``Server-Timing`` value: one ``name;dur=ms;desc="a>b"`` entry per span, then total.

    At most `MAX_HEADER_ENTRIES` spans (the earliest started) are listed; the
    ``total`` entry (time since the request started) is always last.
    """
    tl = tl if tl is not None else timeline()
    if tl is None:
        return ""
    entries: list[str] = []
    for span in tl.spans[:MAX_HEADER_ENTRIES]:
        entry = f"{_metric_name(span.name)};dur={span.duration * 1000:.1f}"
        if span.depth:
            entry += f";desc={_quoted('>'.join(span.path))}"
        entries.append(entry)
    entries.append(f"total;dur={tl.total() * 1000:.1f}")
    return ", ".join(entries)


def log_summary(tl: Timeline | None = None, level: int = logging.INFO) -> None:
    """Log the request's spans as an indented tree on logger ``asynclocal.timing``.

    The record's ``extra`` carries ``request_id``, ``timings`` (a list of
    `Span.as_dict`) and ``total_ms``. Called when the response starts if
    `configure` set a ``summary_level``; call it yourself otherwise, or where no
    middleware runs.
    """
    tl = tl if tl is not None else timeline()
    if tl is None or not logger.isEnabledFor(level):
        return
    spans = tl.spans
    total = tl.total()
    dropped = f" ({tl.dropped} more spans not kept)" if tl.dropped else ""
    lines = [f"{tl._ctx_repr} {total * 1000:.1f}ms{dropped}"]
    lines.extend(
        f"{'  ' * (s.depth + 1)}{s.name} {s.duration * 1000:.1f}ms"
        + (f" !{s.error}" if s.error else "")
        for s in spans
    )
    logger.log(
        level,
        "\n".join(lines),
        extra={
            "request_id": tl._request_id,
            "timings": [s.as_dict() for s in spans],
            "total_ms": round(total * 1000, 3),
        },
    )


class time_block:  # lower-case: used like a function, `with time_block("render"):`
    """Time the ``with`` block as a span named `name` (nothing is recorded outside a request).

    Raises:
        TypeError: `name` is not a non-empty string.
    """

    __slots__ = ("_name", "_parent", "_path", "_start", "_tl", "_token")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"time_block(name) needs a non-empty str, got {name!r:.40}")
        self._name = name
        self._tl: Timeline | None = None

    def __enter__(self) -> None:
        ctx = request_storage.get_store()
        if ctx is None:
            return
        parent = self._parent = _current.get()
        tl = parent.timeline if parent is not None else None
        if tl is None or ctx.get(_KEY) is not tl:
            tl, self._path = _timeline_for(ctx), (self._name,)
        else:
            self._path = (*parent.path, self._name)  # type: ignore[union-attr]
        self._tl = tl
        self._token = _current.set(_Frame(tl, self._path))
        self._start = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tl = self._tl
        if tl is None:
            return
        end = time.perf_counter()
        self._tl = None
        try:
            _current.reset(self._token)
        except ValueError:  # closed from another context (a generator finalised elsewhere)
            _current.set(self._parent)
        error = None if exc_type is None else exc_type.__name__
        tl._add(Span(self._name, self._path, self._start - tl._origin, end - self._start, error))


@overload
def timed(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def timed(name: str, /) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
@overload
def timed(*, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def timed(arg: Any = None, /, *, name: str | None = None) -> Any:
    """Record each call of a sync or ``async`` function as a span of the current request.

    Use as ``@timed``, ``@timed("name")`` or ``@timed(name="name")``; the
    default name is the function's ``__qualname__``. An exception is recorded
    on the span (``error`` = its type name) and propagates unchanged.
    Generators are timed until they are created, not iterated: time their
    consumer instead.

    Raises:
        TypeError: used on something that is neither a function nor a name.
    """
    if callable(arg) and name is None:
        return _decorate(arg, arg.__qualname__)
    label = arg if arg is not None else name
    if not isinstance(label, str) or not label:
        raise TypeError(
            "timed needs a function or a non-empty name: @timed, @timed('db.query') or "
            f"@timed(name='db.query'); got {label!r:.40}"
        )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise TypeError(f"@timed(...) decorates functions, got {type(fn).__name__}")
        return _decorate(fn, label)

    return decorate


def _decorate(fn: Callable[P, R], name: str) -> Callable[P, R]:
    storage = request_storage
    if inspect.iscoroutinefunction(fn):
        async_fn = cast(Callable[..., Any], fn)

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if storage.get_store() is None:
                return await async_fn(*args, **kwargs)
            with time_block(name):
                return await async_fn(*args, **kwargs)

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if storage.get_store() is None:
            return fn(*args, **kwargs)
        with time_block(name):
            return fn(*args, **kwargs)

    return wrapper
