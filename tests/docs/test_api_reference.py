"""docs/api.md lists the whole public surface: every name of every public module's __all__.

Regenerate the page with ``python scripts/api_reference.py > docs/api.md``.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "api.md").read_text()


def _sections() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    current = ""
    for line in PAGE.splitlines():
        heading = re.fullmatch(r"## `([\w.]+)`", line)
        if heading:
            current = heading[1]
            found[current] = set()
        item = re.match(r"- `(\w+)(?:\(\))?`", line)
        if item and current:
            found[current].add(item[1])
    return found


def _public_modules() -> list[str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        generator = importlib.import_module("api_reference")
    finally:
        sys.path.pop(0)
    return list(generator.public_modules())


def test_every_public_name_is_listed_under_its_module() -> None:
    sections = _sections()
    missing: list[str] = []
    for dotted in _public_modules():
        module = importlib.import_module(dotted)
        for name in getattr(module, "__all__", ()):
            if name not in sections.get(dotted, set()):
                missing.append(f"{dotted}.{name}")
    assert missing == [], f"not in docs/api.md (run scripts/api_reference.py): {missing}"


def test_the_page_lists_nothing_that_is_not_public() -> None:
    extra: list[str] = []
    for dotted, names in _sections().items():
        module = importlib.import_module(dotted)
        extra += [f"{dotted}.{n}" for n in names - set(getattr(module, "__all__", ()))]
    assert extra == [], f"docs/api.md lists names that are not public: {extra}"


def test_every_line_says_what_the_name_is() -> None:
    for line in PAGE.splitlines():
        if line.startswith("- `"):
            assert re.search(r" — \S", line), line
