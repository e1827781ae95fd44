"""Task-message carriers (the Celery header / RQ job meta value) decoded in the worker.

Grammar: the value is the JSON text (or bytes, or an already decoded dict)
``{"v": 1, "carrier": {str: str}, "stores": {str: JSON}, "fields": {str: JSON}}``;
anything else yields no context and one warning that never repeats the value.
Carried ids are accepted only in the request-id grammar. Restoring never
raises and the task always gets a valid request id.
"""

from __future__ import annotations

import json
import re
from contextvars import copy_context
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asynclocal.integrations import _queue

from ._props import HOSTILE, MARK, assert_linear, captured_log_lines

ID_GRAMMAR = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
marked = st.text(max_size=30).map(lambda t: MARK + t)
carriers = st.dictionaries(
    st.sampled_from(["x-request-id", "x-root-request-id", "traceparent", "tracestate", "baggage"])
    | st.text(max_size=10),
    marked | st.text(max_size=40) | json_values,
    max_size=6,
)
messages = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 2, "1", None]),
        "carrier": carriers | json_values,
        "stores": st.dictionaries(marked | st.text(max_size=10), json_values, max_size=3)
        | json_values,
        "fields": st.dictionaries(st.text(max_size=10), json_values, max_size=3) | json_values,
    }
)
raw_values = st.one_of(
    messages.map(json.dumps),
    messages.map(lambda m: json.dumps(m).encode()),
    messages,
    marked,
    marked.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60).map(lambda b: MARK.encode() + b),
    json_values,
)


@HOSTILE
@given(raw_values)
def test_decode_never_raises_and_never_logs_the_value(raw: object) -> None:
    with captured_log_lines() as lines:
        decoded = _queue.decode(raw)
    assert not any(MARK in line for line in lines)
    if decoded is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.carrier.items())
        assert all(isinstance(k, str) for k in decoded.stores)
        assert all(isinstance(k, str) for k in decoded.fields)


def _activate(raw: object) -> Any:
    activation = _queue.activate(raw, task_id="task-1", task_name="tasks.add")
    ctx = _queue.request_storage.get_store()
    activation.undo()
    return ctx


@HOSTILE
@given(raw_values)
def test_activation_never_raises_and_ids_follow_the_grammar(raw: object) -> None:
    with captured_log_lines() as lines:
        ctx = copy_context().run(_activate, raw)
    assert ctx is not None
    assert ctx.request_id == "task-1"
    for value in (ctx.parent_request_id, ctx.root_request_id):
        assert value is None or ID_GRAMMAR.fullmatch(value)
    assert not any(MARK in line for line in lines)


def test_junk_is_named_but_not_shown() -> None:
    secret = MARK + "password=hunter2"
    for raw in (
        secret,
        "{" + secret,
        json.dumps({"v": 1, "carrier": [secret]}),
        b"\xff" + secret.encode(),
    ):
        with captured_log_lines() as lines:
            assert _queue.decode(raw) is None
        assert len(lines) == 1
        assert "malformed asynclocal task context" in lines[0]
        assert MARK not in lines[0]
        assert "hunter2" not in lines[0]


def test_unknown_store_names_are_counted_not_shown() -> None:
    raw = json.dumps({"v": 1, "stores": {MARK + "\r\nforged line": 1, MARK + "app.tenant": 2}})
    with captured_log_lines() as lines:
        copy_context().run(_activate, raw)
    assert not any(MARK in line or "forged" in line for line in lines)
    assert any("carries 2 store(s)" in line for line in lines)


def test_decode_cost_is_linear() -> None:
    def make(count: int) -> object:
        raw = json.dumps(
            {
                "v": 1,
                "carrier": {f"x-h{i}": "v" * 20 for i in range(count)},
                "fields": {"f": ["x"] * count},
            }
        )
        junk = '{"v": 1, "carrier": ' + "[" * count
        return lambda: (_queue.decode(raw), _queue.decode(junk))

    with captured_log_lines():
        assert_linear(make, 200, "task carrier decode")  # type: ignore[arg-type]
