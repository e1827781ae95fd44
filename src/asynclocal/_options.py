"""Keyword-option checking for public setup calls: a typo fails at the call, naming the options.

`checked_options` wraps a function (or ``__init__``) whose options are explicit
keyword-only parameters. The signature seen by `inspect`, mypy and IDEs is the
function's own; an unknown keyword raises `UnknownOptionError` (a `TypeError`
and a `ConfigurationError`) whose message names the closest valid option and
lists them all, instead of Python's bare "unexpected keyword argument".
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from .errors import UnknownOptionError

__all__ = ["checked_options", "unknown_option_error"]

P = ParamSpec("P")
R = TypeVar("R")


def unknown_option_error(
    where: str, unknown: Iterable[str], valid: Iterable[str]
) -> UnknownOptionError:
    """The error for `unknown` option names given to `where` (never repeats their values)."""
    names = sorted(valid)
    parts = []
    for name in sorted(unknown):
        shown = repr(name)[:60]
        close = difflib.get_close_matches(name, names, n=1)
        parts.append(f"{shown} (did you mean {close[0]!r}?)" if close else shown)
    return UnknownOptionError(
        f"{where} got unknown option{'s' if len(parts) > 1 else ''} {', '.join(parts)}; "
        f"valid options: {', '.join(names)}"
    )


def check_option_names(where: str, given: Mapping[str, Any], valid: frozenset[str]) -> None:
    """Raise `unknown_option_error` when `given` has a key outside `valid`."""
    unknown = [k for k in given if k not in valid]
    if unknown:
        raise unknown_option_error(where, unknown, valid)


def checked_options(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` with unknown keyword arguments reported by `unknown_option_error`."""
    params = inspect.signature(fn).parameters.values()
    valid = frozenset(
        p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ) - {"self"}
    qualname = fn.__qualname__
    where = (qualname[: -len(".__init__")] if qualname.endswith(".__init__") else qualname) + "()"

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for key in kwargs:
            if key not in valid:
                raise unknown_option_error(where, [k for k in kwargs if k not in valid], valid)
        return fn(*args, **kwargs)

    return wrapper
