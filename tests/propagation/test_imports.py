"""Import hygiene: propagation is stdlib-only; a missing extra names itself."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys
import asynclocal.propagation
OPTIONAL = ("opentelemetry", "httpx", "aiohttp", "requests")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL)
assert not loaded, loaded
import asynclocal.integrations.aws_lambda  # standard library only
for module, package, extra in [
    ("httpx", "httpx", "httpx"),
    ("requests", "requests", "requests"),
    ("aiohttp_client", "aiohttp", "aiohttp"),
    ("opentelemetry", "opentelemetry", "opentelemetry"),
]:
    sys.modules[package] = None
    try:
        __import__("asynclocal.integrations." + module)
    except ImportError as exc:
        assert f"pip install 'asynclocal[{extra}]'" in str(exc), str(exc)
    else:
        raise AssertionError(module + " imported without its package")
print("ok")
"""


def test_propagation_imports_without_optional_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_package_exports_what_users_call_and_old_names_still_import() -> None:
    import pytest

    from asynclocal import propagation
    from asynclocal.propagation import _carrier, _w3c, w3c

    assert set(propagation.__all__) == {
        "SECRET_FIELDS",
        "PropagatedContext",
        "PropagationConfig",
        "PropagationTargets",
        "TargetPattern",
        "configure",
        "continue_context",
        "continue_request",
        "extract",
        "get_config",
        "inject",
        "install",
        "installed",
        "reset_config",
        "uninstall",
        "w3c",
    }
    for name in propagation.__all__:
        assert getattr(propagation, name) is not None
    # the codecs live in the documented w3c module; their old names keep working
    for name in w3c.__all__:
        assert getattr(w3c, name) is getattr(_w3c, name)
        assert getattr(propagation, name) is getattr(_w3c, name)
    # the integrations' hooks are private, importable for compatibility
    for name in ("write_fields", "set_trace_source", "ActiveSpan", "trace_flags"):
        assert getattr(propagation, name) is getattr(_carrier, name)
        assert name not in dir(propagation) or name in propagation.__all__
    with pytest.raises(AttributeError, match="no attribute 'injcet'"):
        propagation.injcet  # type: ignore[attr-defined]  # noqa: B018
