"""Reversible monkey-patches: a set of attribute replacements applied and undone as one.

Every ``install()``/``uninstall()``/``installed()`` trio of the package is built
on `Patches`: idempotent, thread-safe (one lock per set), and reversible, since
the value each patch replaced is saved when it is first applied and put back by
`Patches.uninstall`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Patch", "Patches"]

#: ``(owner, attribute, replacement)``: a class or module, the name, the new value.
Patch = tuple[Any, str, Any]

_MISSING = object()


def _raw(owner: Any, name: str) -> Any:
    # On a class, the value it defines itself (a classmethod stays a classmethod);
    # _MISSING when inherited, so that undoing the patch deletes the attribute.
    if isinstance(owner, type):
        return owner.__dict__.get(name, _MISSING)
    return getattr(owner, name)


class Patches:
    """Attribute replacements applied together by `install` and undone by `uninstall`.

    `patches` is the list of `Patch` triples, or a function returning it that
    `install` calls each time it applies them (for replacements that wrap the
    value in place at that moment). Both methods hold `lock`, a re-entrant lock
    that callers may also hold around their own bookkeeping.
    """

    def __init__(self, patches: Iterable[Patch] | Callable[[], Iterable[Patch]] = ()) -> None:
        if callable(patches):
            self._build: Callable[[], Iterable[Patch]] = patches
        else:
            fixed = tuple(patches)
            self._build = lambda: fixed
        self.lock = threading.RLock()
        # (id(owner), name) -> (owner, saved value): owners need not be hashable.
        self._saved: dict[tuple[int, str], tuple[Any, Any]] = {}
        self._installed = False

    @property
    def installed(self) -> bool:
        """Whether the replacements are in effect."""
        return self._installed

    def original(self, owner: Any, name: str) -> Any:
        """The value the patch of `owner.name` replaced, or the current one when not patched.

        For a class this is the attribute as the class defines it (its ``__dict__``
        entry), or the inherited value when it defines none.
        """
        with self.lock:
            key = (id(owner), name)
            value = self._saved[key][1] if key in self._saved else _raw(owner, name)
        if value is not _MISSING:
            return value
        for base in owner.__mro__[1:]:
            if name in base.__dict__:
                return base.__dict__[name]
        raise AttributeError(f"{owner.__qualname__} has no attribute {name!r}")

    def install(self, patches: Iterable[Patch] | None = None) -> bool:
        """Apply the replacements; return whether anything was applied.

        Without `patches`: idempotent, a no-op while installed. With `patches`:
        apply those even when installed (replacing earlier replacements); the
        values saved for undoing stay the ones found the first time. If a first
        install fails part-way (an attribute that cannot be set), what it applied
        is undone before the error propagates.
        """
        with self.lock:
            if patches is None:
                if self._installed:
                    return False
                patches = self._build()
            try:
                for owner, name, value in patches:
                    key = (id(owner), name)
                    saved = self._saved.get(key) or (owner, _raw(owner, name))
                    setattr(owner, name, value)
                    self._saved[key] = saved
            except BaseException:
                if not self._installed:  # all or nothing: undo the part applied
                    self._restore()
                raise
            self._installed = True
            return True

    def uninstall(self) -> bool:
        """Put every saved value back; return whether anything was undone. Idempotent."""
        with self.lock:
            if not self._installed:
                return False
            self._restore()
            self._installed = False
            return True

    def _restore(self) -> None:
        for (_, name), (owner, value) in reversed(self._saved.items()):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        self._saved.clear()
