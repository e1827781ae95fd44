"""examples/trace_request_tree.py: the async tree of one request, with step timings."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_trace_example_prints_the_request_tree() -> None:
    example = load("trace_request_tree")
    page, tree = example.trace_one_request()
    assert page == "ada: 6"
    # strip the timings, keep the shape
    shape = [re.sub(r"  busy=\S+", "", line) for line in tree.splitlines()]
    sleep = ["Future", "Timeout _set_result_unless_cancelled  steps=1"]
    assert shape[0] == "Task handle_request  steps=3"
    assert [line.lstrip("│├└─ ") for line in shape[1:]] == [
        "Task fetch_user  steps=2",
        *sleep,
        "Task fetch_orders  steps=2",
        *(["Task fetch_order  steps=2", *sleep] * 3),
        "Executor render  steps=1",
        "Future",
    ]
