"""The installed distribution's metadata (an editable install or a wheel alike).

Next to a source tree whose pyproject.toml changed since the (editable) install, the
installed metadata is stale and these tests skip saying so; scripts/test.sh reinstalls
whenever pyproject.toml changes, and the wheel tests always run them.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

import asynclocal

META = metadata.metadata("asynclocal")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _stale() -> bool:
    if sys.version_info < (3, 11) or not PYPROJECT.is_file():
        return False
    import tomllib

    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return set(declared.get("classifiers", [])) != set(META.get_all("Classifier") or [])


pytestmark = pytest.mark.skipif(
    _stale(), reason="the installed metadata predates pyproject.toml: reinstall (pip install -e .)"
)


def _extra_requirements(extra: str) -> list[str]:
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [
        r.split(";")[0].strip() for r in metadata.requires("asynclocal") or [] if marker.search(r)
    ]


def test_one_version_everywhere() -> None:
    assert metadata.version("asynclocal") == asynclocal.__version__


def test_classifiers_name_every_supported_python_and_free_threading() -> None:
    classifiers = set(META.get_all("Classifier") or [])
    for minor in range(10, 15):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert any(
        c.startswith("Programming Language :: Python :: Free Threading ::") for c in classifiers
    )
    assert META["Requires-Python"] == ">=3.10"


def test_license_and_project_urls() -> None:
    assert META["License-Expression"] == "MIT"
    assert "LICENSE" in (META.get_all("License-File") or [])
    urls = dict(u.split(", ", 1) for u in META.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)


def test_opentelemetry_extra_needs_the_api_only() -> None:
    reqs = _extra_requirements("opentelemetry")
    assert [r for r in reqs if r.startswith("opentelemetry-api")]
    assert not [r for r in reqs if "sdk" in r]


def test_the_all_extra_covers_every_integration_extra() -> None:
    extras = set(META.get_all("Provides-Extra") or [])
    (all_req,) = _extra_requirements("all")
    listed = set(re.fullmatch(r"asynclocal\[(.*)\]", all_req.replace(" ", "")).group(1).split(","))  # type: ignore[union-attr]
    assert listed == extras - {"all", "demo", "dev", "fuzz"}
