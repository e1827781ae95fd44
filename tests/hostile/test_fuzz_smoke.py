"""Every fuzz target in fuzz/ runs a few hundred mutated inputs without a failure.

The same targets run for hours under atheris (see docs/hostile-input.md); here
the plain random loop, with a fixed seed, keeps them working and reproducible.
"""

from __future__ import annotations

import importlib
import pathlib
import sys

import pytest

FUZZ = pathlib.Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))


def test_there_is_a_target_per_parser() -> None:
    assert set(TARGETS) >= {
        "fuzz_cookies", "fuzz_request_id", "fuzz_asgi_headers", "fuzz_wsgi_environ",
        "fuzz_lambda_event", "fuzz_task_carrier", "fuzz_response_headers", "fuzz_w3c",
        "fuzz_redaction",
    }  # fmt: skip


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_smoke(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FUZZ))
    harness = importlib.import_module("_harness")
    module = importlib.import_module(name)
    count = harness.plain_loop(module.one_input, module.SEEDS, iterations=400, seed=1)
    assert count == 400
    sys.modules.pop(name, None)
