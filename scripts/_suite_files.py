"""Which test files of some suites can run on this interpreter (used by scripts/_matrix.sh).

Run with the interpreter that will run the tests:

    python scripts/_suite_files.py tests/core tests/web ...

A test file (or a directory's conftest.py) needs every third-party module it imports
at module level, directly or through the `tests.*` and `asynclocal.*` modules it
imports. Files whose needs are not installed are printed to stderr as
``SKIPPED <file>: no <module> on this interpreter`` and to stdout as ``--ignore=<file>``
arguments for pytest. A suite whose conftest.py cannot be imported is ignored whole.
Imports inside functions or under ``if TYPE_CHECKING`` do not count.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"tests": ROOT, "asynclocal": ROOT / "src"}
STDLIB = set(sys.stdlib_module_names)


def _module_file(name: str) -> Path | None:
    base = LOCAL[name.partition(".")[0]]
    path = base.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_imports(tree: ast.Module, package: str) -> set[str]:
    names: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    module = f"{base}.{node.module}" if node.module else base
                    names.add(module)
                    names.update(f"{module}.{alias.name}" for alias in node.names)
                elif node.module:
                    names.add(node.module)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Try):
                # `try: import x / except ImportError: x = None` is optional: skip it;
                # a handler that raises again (a friendlier ImportError) keeps it required.
                optional = any(
                    isinstance(h.type, ast.Name)
                    and h.type.id in ("ImportError", "ModuleNotFoundError", "Exception")
                    and not any(isinstance(n, ast.Raise) for n in ast.walk(h))
                    for h in node.handlers
                )
                if not optional:
                    visit(node.body)
            elif isinstance(node, ast.If):
                test = node.test
                is_type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                    isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
                )
                if not is_type_checking:
                    visit(node.body)
                    visit(node.orelse)

    visit(tree.body)
    return names


@cache
def _direct(path: Path) -> tuple[frozenset[Path], frozenset[str]]:
    """The local files `path` imports (parents included) and its third-party imports."""
    rel = path.relative_to(LOCAL["asynclocal"] if "src" in path.parts else ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        package = ".".join(parts)
    else:
        package = ".".join(parts[:-1])
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    local: set[Path] = set()
    third_party: set[str] = set()
    for name in _top_level_imports(tree, package):
        top = name.partition(".")[0]
        if top in LOCAL:
            pieces = name.split(".")
            for n in range(1, len(pieces) + 1):  # importing a.b.c imports a and a.b first
                found = _module_file(".".join(pieces[:n]))
                if found is not None:
                    local.add(found)
        elif top not in STDLIB and top != "__future__":
            third_party.add(top)
    return frozenset(local), frozenset(third_party)


def missing_for_file(path: Path) -> frozenset[str]:
    """Third-party top-level modules `path` needs (transitively) that are not installed."""
    seen = {path}
    todo = [path]
    missing: set[str] = set()
    while todo:
        local, third_party = _direct(todo.pop())
        missing.update(top for top in third_party if not _installed(top))
        for nxt in local - seen:
            seen.add(nxt)
            todo.append(nxt)
    return frozenset(missing)


@cache
def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def main(suites: list[str]) -> int:
    tag = f"{sys.implementation.name} {sys.version.split()[0]}"
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        tag += " (free-threaded)"
    for suite in suites:
        root = ROOT / suite
        conftest = root / "conftest.py"
        if conftest.is_file():
            missing = missing_for_file(conftest)
            if missing:
                print(
                    f"SKIPPED {suite} (whole suite): {', '.join(sorted(missing))} not "
                    f"installable on {tag}",
                    file=sys.stderr,
                )
                print(f"--ignore={suite}")
                continue
        for path in sorted(root.rglob("test_*.py")):
            missing = missing_for_file(path)
            if missing:
                rel = path.relative_to(ROOT)
                print(
                    f"SKIPPED {rel}: {', '.join(sorted(missing))} not installable on {tag}",
                    file=sys.stderr,
                )
                print(f"--ignore={rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
