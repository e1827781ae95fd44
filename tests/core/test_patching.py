"""`asynclocal._patching.Patches`: the install/uninstall machinery every patching module uses."""

from __future__ import annotations

import threading
import types

from asynclocal._patching import Patches


class Base:
    def greet(self) -> str:
        return "base"

    @classmethod
    def make(cls) -> str:
        return "made"


class Child(Base):
    def own(self) -> str:
        return "own"


def test_install_is_idempotent_and_uninstall_restores_exactly() -> None:
    patches = Patches([(Child, "own", lambda self: "patched"), (Child, "greet", lambda self: "p")])
    original_own = Child.__dict__["own"]

    assert patches.install() is True
    assert patches.install() is False
    assert patches.installed
    assert (Child().own(), Child().greet()) == ("patched", "p")

    assert patches.uninstall() is True
    assert patches.uninstall() is False
    assert not patches.installed
    assert Child.__dict__["own"] is original_own
    assert "greet" not in Child.__dict__  # inherited before: deleted, not copied down
    assert Child().greet() == "base"


def test_a_classmethod_is_restored_as_the_class_defined_it() -> None:
    saved = Base.__dict__["make"]
    patches = Patches([(Base, "make", classmethod(lambda cls: "patched"))])
    patches.install()
    assert patches.original(Base, "make") is saved
    assert Base.make() == "patched"
    patches.uninstall()
    assert Base.__dict__["make"] is saved
    assert Base.make() == "made"


def test_explicit_patches_replace_while_the_first_original_is_kept() -> None:
    module = types.SimpleNamespace(fn=lambda: "orig")
    first = module.fn
    patches = Patches()

    for label in ("one", "two"):
        inner = patches.original(module, "fn")
        patches.install([(module, "fn", lambda inner=inner, label=label: f"{label}({inner()})")])

    assert module.fn() == "two(orig)"  # wraps the original, never the earlier wrapper
    patches.uninstall()
    assert module.fn is first


def test_a_builder_runs_at_each_install() -> None:
    module = types.SimpleNamespace(value=1)
    calls: list[int] = []

    def build() -> list[tuple[object, str, object]]:
        calls.append(module.value)
        return [(module, "value", module.value * 10)]

    patches = Patches(build)
    patches.install()
    patches.install()
    patches.uninstall()
    module.value = 2
    patches.install()
    assert (calls, module.value) == ([1, 2], 20)
    patches.uninstall()
    assert module.value == 2


def test_concurrent_install_and_uninstall_leave_a_consistent_state() -> None:
    module = types.SimpleNamespace(a="a", b="b")
    patches = Patches([(module, "a", "A"), (module, "b", "B")])
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(200):
            if (i + n) % 2:
                patches.install()
            else:
                patches.uninstall()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    expected = ("A", "B") if patches.installed else ("a", "b")
    assert (module.a, module.b) == expected
    patches.uninstall()
    assert (module.a, module.b) == ("a", "b")


def test_a_failing_first_install_undoes_what_it_applied() -> None:
    module = types.SimpleNamespace(a="a")
    patches = Patches([(module, "a", "A"), (object, "nope", 1)])  # object's attrs are read-only
    try:
        patches.install()
    except TypeError:
        pass
    else:
        raise AssertionError("setting an attribute of object should fail")
    assert module.a == "a"
    assert not patches.installed
