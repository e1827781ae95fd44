"""Fuzz the task-message context (Celery header / RQ meta value) decoded in a worker."""

from __future__ import annotations

import json
from contextvars import copy_context
from typing import Any

from _checks import ID_GRAMMAR, LogLines, not_leaked, text
from _harness import instrumented, main

with instrumented():
    from asynclocal.integrations import _queue
    from asynclocal.request import request_storage

SEEDS = [
    json.dumps({"v": 1, "carrier": {"x-request-id": "abc", "x-root-request-id": "r"}}).encode(),
    json.dumps({"v": 1, "stores": {"unknown.store": 1}, "fields": {"tenant": "t"}}).encode(),
    b'{"v": 1, "carrier": [[[[',
    b"not json at all",
]


def _activate(raw: object) -> Any:
    activation = _queue.activate(raw, task_id="task-1", task_name="tasks.fuzz")
    ctx = request_storage.get_store()
    activation.undo()
    return ctx


def one_input(data: bytes) -> None:
    raw: object = data if data[:1] == b"b" else text(data)
    with LogLines() as logs:
        decoded = _queue.decode(raw)
        ctx = copy_context().run(_activate, raw)
    if decoded is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.carrier.items())
    assert ctx is not None
    assert ctx.request_id == "task-1"
    for value in (ctx.parent_request_id, ctx.root_request_id):
        assert value is None or ID_GRAMMAR.fullmatch(value)
    if decoded is None:
        not_leaked(text(data), *logs.lines)


if __name__ == "__main__":
    main(one_input, SEEDS)
