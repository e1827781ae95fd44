"""Audit records and feature flags read who is acting from the request context."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import sys

import pytest

from asynclocal.patterns.audit import audit, audited
from asynclocal.patterns.flags import (
    FeatureFlags,
    Flag,
    UnknownFlagError,
    bucket_of,
    evaluated_flags,
)
from asynclocal.patterns.rbac import requires
from asynclocal.request import RequestContext, request_storage

from .conftest import ListHandler


def audit_records(handler: ListHandler) -> list[logging.LogRecord]:
    return [r for r in handler.records if r.name == "asynclocal.audit"]


async def test_audit_records_carry_who_what_and_request(capture_logger: ListHandler) -> None:
    async def rename(i: int) -> None:
        await asyncio.sleep(random.uniform(0, 0.005))
        audit("room.rename", target=f"room-{i}", old="a", new=f"b{i}")

    async def one(i: int) -> None:
        ctx = RequestContext(f"req-{i}", user={"id": f"user-{i}"}, access_token="SECRET")
        await request_storage.run(ctx, rename, i)

    await asyncio.gather(*(one(i) for i in range(30)))
    records = audit_records(capture_logger)
    assert len(records) == 30
    for record in records:
        data = record.audit  # type: ignore[attr-defined]
        i = data["target"].split("-")[1]
        assert data == {
            "action": "room.rename",
            "target": f"room-{i}",
            "outcome": "success",
            "user_id": f"user-{i}",
            "request_id": f"req-{i}",
            "details": {"old": "a", "new": f"b{i}"},
        }
        assert (record.request_id, record.user_id) == (f"req-{i}", f"user-{i}")  # type: ignore[attr-defined]
        assert "SECRET" not in json.dumps(data) + record.getMessage()


def test_audit_outside_a_request_and_odd_values(capture_logger: ListHandler) -> None:
    data = audit("job.cleanup", target=object.__new__(object), count=3, ids={1})
    assert (data["user_id"], data["request_id"]) == (None, None)
    assert data["target"].startswith("<object object")
    assert data["details"] == {"count": 3, "ids": [1]}
    json.dumps(data)
    with pytest.raises(TypeError, match="non-empty str"):
        audit("")


def test_audited_decorator_outcomes(capture_logger: ListHandler) -> None:
    @audited("room.delete", target=lambda room_id: room_id)
    @requires("admin")
    def delete(room_id: str) -> str:
        if room_id == "bad":
            raise ValueError("no")
        return "ok"

    def call(user: dict[str, object], room_id: str) -> None:
        try:
            request_storage.run(RequestContext("r", user=user), delete, room_id)
        except Exception:
            pass

    call({"id": "root", "roles": ["admin"]}, "r1")
    call({"id": "eve", "roles": []}, "r2")
    call({"id": "root", "roles": ["admin"]}, "bad")
    got = [
        (r.audit["outcome"], r.audit["user_id"], r.audit["target"])  # type: ignore[attr-defined]
        for r in audit_records(capture_logger)
    ]
    assert got == [("success", "root", "r1"), ("denied", "eve", "r2"), ("error", "root", "bad")]


def test_percentage_rollout_is_stable_and_proportional() -> None:
    flags = FeatureFlags()
    flags.define("new-search", percentage=30)
    users = [f"user-{i}" for i in range(4000)]

    def enabled_for(user: str) -> bool:
        return request_storage.run(
            RequestContext("r", user={"id": user}), flags.is_enabled, "new-search"
        )

    first = {u: enabled_for(u) for u in users}
    assert {u: enabled_for(u) for u in users} == first  # stable across requests
    share = sum(first.values()) / len(users)
    assert 0.27 < share < 0.33
    flags.define("new-search", percentage=60)
    assert all(enabled_for(u) for u in users if first[u])  # raising it only adds users
    # Stable across processes (no per-process hash seed).
    code = (
        "from asynclocal.patterns.flags import bucket_of; print(bucket_of('new-search', 'user-7'))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(other.stdout) == bucket_of("new-search", "user-7")


def test_allow_lists_deny_lists_tenants_and_defaults() -> None:
    flags = FeatureFlags([Flag("beta", users=frozenset({"vip"}), deny_users=frozenset({"banned"}))])
    flags.define("tenant-x", tenants={"acme"}, default=True, percentage=0)
    flags.define("off", percentage=100, users={"vip"}, enabled=False)

    def evaluate(user: object, *names: str, **fields: object) -> dict[str, bool]:
        def run() -> dict[str, bool]:
            for name in names:
                flags.is_enabled(name)
            return dict(evaluated_flags())

        return request_storage.run(RequestContext("r", user=user, fields=fields), run)

    assert evaluate({"id": "vip"}, "beta", "off") == {"beta": True, "off": False}
    assert evaluate({"id": "someone"}, "beta") == {"beta": False}
    assert evaluate({"id": "banned", "tenant_id": "acme"}, "beta", "tenant-x") == {
        "beta": False,
        "tenant-x": True,
    }
    assert evaluate({"id": "x"}, "tenant-x", tenant="acme") == {"tenant-x": True}
    # Outside a request: the default, unless the caller says who.
    assert flags.is_enabled("tenant-x") is True
    assert flags.is_enabled("beta") is False
    assert flags.is_enabled("beta", user_id="vip") is True
    assert evaluated_flags() == {}
    with pytest.raises(UnknownFlagError, match="not defined"):
        flags.is_enabled("nope")
    assert flags.is_enabled("nope", default=True) is True
    with pytest.raises(ValueError, match=r"0\.\.100"):
        flags.define("bad", percentage=101)
