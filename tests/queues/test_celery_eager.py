"""Eager Celery (`task_always_eager`, `task.apply()`): the same guarantees as a worker."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, chain, group

from asynclocal import RequestContext, current_request, request_storage
from asynclocal.integrations import celery as al_celery
from asynclocal.integrations.celery import ContextNotSerializableError, install, uninstall
from tests.queues.stores import local_only, seen, tenant

app = Celery("asynclocal_eager_tests", broker="memory://", backend="cache+memory://")
app.conf.update(task_always_eager=True)

attempts: list[dict[str, Any]] = []


@app.task(bind=True)
def record(self: Any, delay: float = 0.0) -> dict[str, Any]:
    return seen(self.request.id)


@app.task(bind=True)
def step(self: Any, acc: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [*(acc or []), seen(self.request.id)]


@app.task(bind=True, max_retries=3)
def flaky(self: Any, fail_times: int) -> dict[str, Any]:
    attempt = {**seen(self.request.id), "retries": self.request.retries}
    attempts.append(json.loads(json.dumps(attempt)))  # a snapshot, not the live store
    if self.request.retries < fail_times:
        tenant.get_store()["mutated"] = True  # a copy: must reach neither the retry nor the caller
        raise self.retry(countdown=0)
    return attempts[-1]


@app.task(bind=True, autoretry_for=(RuntimeError,), max_retries=2, default_retry_delay=0)
def auto_flaky(self: Any) -> dict[str, Any]:
    attempt = {**seen(self.request.id), "retries": self.request.retries}
    attempts.append(json.loads(json.dumps(attempt)))
    if self.request.retries < 2:
        raise RuntimeError("fails on purpose")  # Celery retries it (autoretry_for)
    return attempt


@app.task(bind=True)
def nested(self: Any) -> dict[str, Any]:
    child = record.delay()
    return {"me": seen(self.request.id), "child": child.result}


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    install(app, fields=["plan"])
    attempts.clear()
    try:
        yield
    finally:
        uninstall(app)


def _request(name: str) -> RequestContext:
    ctx = RequestContext(name)
    ctx.set("plan", f"plan-of-{name}")
    return ctx


def test_task_runs_in_a_hop_context_chained_to_the_request() -> None:
    ctx = _request("req-1")

    def handler() -> tuple[dict[str, Any], str, Any]:
        local_only.enter_with("request-only")
        result = record.delay().get()
        return result, current_request().request_id, local_only.get_store()

    result, after_id, after_local = request_storage.run(ctx, tenant.run, {"t": 1}, handler)
    assert result["request_id"] == result["task_id"] != "req-1"
    assert (result["root"], result["parent"]) == ("req-1", "req-1")
    assert result["trace_id"] == ctx.trace_id is not None
    assert result["tenant"] == {"t": 1}
    assert result["plan"] == "plan-of-req-1"
    assert result["local"] is None  # non-cross-process storages do not travel, even eagerly
    assert (result["method"], result["path"]) == ("TASK", record.name)
    # the caller gets its own context back
    assert after_id == "req-1"
    assert after_local == "request-only"


def test_store_is_a_json_copy() -> None:
    store = {"t": 1, "items": (1, 2)}
    result = tenant.run(store, lambda: record.delay().get())
    assert result["tenant"] == {"t": 1, "items": [1, 2]}


def test_task_outside_a_request_gets_a_root_context() -> None:
    result = record.delay().get()
    assert result["request_id"] == result["root"] == result["task_id"]
    assert result["parent"] is None
    assert result["tenant"] is None


def test_apply_directly_and_send_task_style_calls_carry_context() -> None:
    ctx = _request("req-apply")
    result = request_storage.run(ctx, lambda: record.apply().get())
    assert result["parent"] == "req-apply"
    sig_result = request_storage.run(ctx, lambda: record.s().apply_async().get())
    assert sig_result["parent"] == "req-apply"


def test_chain_steps_are_chained_to_the_previous_step_as_in_a_worker() -> None:
    ctx = _request("req-chain")
    steps = request_storage.run(
        ctx, tenant.run, {"t": 2}, lambda: chain(step.s(), step.s(), step.s()).apply_async().get()
    )
    assert steps[0]["parent"] == "req-chain"
    assert [s["parent"] for s in steps[1:]] == [s["task_id"] for s in steps[:-1]]
    assert all(s["root"] == "req-chain" and s["tenant"] == {"t": 2} for s in steps)


def test_group_members_all_continue_the_request() -> None:
    ctx = _request("req-group")
    results = request_storage.run(ctx, lambda: group(record.s() for _ in range(3)).apply_async())
    for result in results.get():
        assert result["parent"] == "req-group"


def test_retries_see_the_published_context() -> None:
    ctx = _request("req-retry")
    store = {"t": 3}
    final = request_storage.run(ctx, tenant.run, store, lambda: flaky.delay(2).get())
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    assert final["retries"] == 2
    for attempt in attempts:
        assert attempt["request_id"] == attempts[0]["request_id"]
        assert attempt["parent"] == "req-retry"
        assert attempt["tenant"] == {"t": 3}
    assert store == {"t": 3}


def test_autoretries_see_the_published_context() -> None:
    """Celery's autoretry_for (headers were lost there: celery#7523) keeps the context."""
    ctx = _request("req-autoretry")
    final = request_storage.run(ctx, tenant.run, {"t": 5}, lambda: auto_flaky.delay().get())
    assert final["retries"] == 2
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    for attempt in attempts:
        assert attempt["request_id"] == attempts[0]["request_id"]
        assert (attempt["parent"], attempt["tenant"]) == ("req-autoretry", {"t": 5})


def test_subtask_of_an_eager_task_has_it_as_parent() -> None:
    ctx = _request("req-nested")
    result = request_storage.run(ctx, tenant.run, {"t": 4}, lambda: nested.delay().get())
    assert result["me"]["parent"] == "req-nested"
    assert result["child"]["parent"] == result["me"]["task_id"]
    assert result["child"]["root"] == "req-nested"
    assert result["child"]["tenant"] == {"t": 4}


def test_concurrent_requests_each_see_their_own_context() -> None:
    async def handler(i: int) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for _ in range(3):
            await asyncio.sleep(random.uniform(0, 0.003))
            out.append((i, record.delay().get()))
        return out

    async def main() -> list[list[tuple[int, dict[str, Any]]]]:
        return await asyncio.gather(
            *(
                request_storage.run(_request(f"req-{i}"), tenant.run, {"t": i}, handler, i)
                for i in range(30)
            )
        )

    for batch in asyncio.run(main()):
        for i, result in batch:
            assert result["parent"] == f"req-{i}"
            assert result["tenant"] == {"t": i}
            assert result["plan"] == f"plan-of-req-{i}"


def test_unserialisable_values_fail_at_publish() -> None:
    with pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant.*set"):
        tenant.run({1, 2}, record.delay)
    ctx = _request("req-bad")
    ctx.set("plan", object())
    with pytest.raises(ContextNotSerializableError, match="'plan'"):
        request_storage.run(ctx, record.delay)
    assert issubclass(ContextNotSerializableError, TypeError)


def test_fields_not_allow_listed_never_travel() -> None:
    ctx = _request("req-secret")
    ctx.set("secret", "s3cr3t")
    ctx.access_token = "token"

    @app.task(bind=True)
    def probe(self: Any) -> dict[str, Any]:
        here = current_request()
        return {"secret": here.get("secret"), "token": here.access_token}

    assert request_storage.run(ctx, lambda: probe.delay().get()) == {
        "secret": None,
        "token": None,
    }


def test_install_validates_and_uninstall_stops_propagation() -> None:
    with pytest.raises(TypeError, match="Celery"):
        install(object())
    with pytest.raises(TypeError, match="list of field names"):
        install(app, fields="plan")
    install(app)  # idempotent
    assert al_celery.installed(app)
    uninstall(app)
    assert not al_celery.installed(app)
    ctx = _request("req-off")
    result = request_storage.run(ctx, lambda: record.delay().get())
    # without the integration an eager task simply runs in the caller's context
    assert result["request_id"] == "req-off"
