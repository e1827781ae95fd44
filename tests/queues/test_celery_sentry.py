"""Sentry events and transactions of Celery tasks carry the task's own ids (real worker)."""

from __future__ import annotations

import pytest

from tests.logging.test_sentry import request_number, run_scenario

pytest.importorskip("sentry_sdk")


def test_celery_task_events_and_transactions_carry_their_task(redis_server: str) -> None:
    result = run_scenario("celery", redis_server)
    sent: dict[str, str] = result["sent"]
    events = [p for p in result["payloads"] if p.get("type") != "transaction"]
    transactions = [p for p in result["payloads"] if p.get("type") == "transaction"]
    assert len(events) == 20  # 10 failures, 10 messages
    assert len(transactions) == 20
    for payload in events:
        i = request_number(payload)
        tags = payload["tags"]
        assert tags["request_id"] == sent[str(i)]
        assert tags["root_request_id"] == f"rq-{i}-x"
        assert tags["parent_request_id"] == f"rq-{i}-x"
        assert payload["user"]["id"] == f"user-{i}"
    assert sorted(p["tags"]["request_id"] for p in transactions) == sorted(sent.values())
    for payload in transactions:
        tags = payload["tags"]
        i = next(k for k, v in sent.items() if v == tags["request_id"])
        assert tags["root_request_id"] == f"rq-{i}-x"
        assert payload["user"]["id"] == f"user-{i}"
