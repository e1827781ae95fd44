"""The web demo's checks flag each kind of mix-up (synthetic runs, no servers).

A consistent run passes; then each test breaks one thing a real mix-up would
break and asserts the checks name it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from asynclocal._demo._base import Tally
from asynclocal._demo._web_check import Stats, check_logs, check_peer, check_responses
from asynclocal._demo._web_client import Outcome, Planned

TIMING = 'controller.payment;dur=2.0, repository.find_payment;dur=1.0;desc="a>b>c", total;dur=3.0'


def _planned(seq: int, kind: str, user: str, expected: int, expired: bool = False) -> Planned:
    return Planned(seq, kind, user, expired, "valid", f"client-{seq}", expected)


def _outcome(p: Planned) -> Outcome:
    rid = f"client-{p.seq}"
    body: dict[str, Any] = {"request_id": rid}
    if p.expected == 200:
        seen = {"request_id": rid, "user": p.user}
        ledger = _ledger(p, rid)
        body.update(
            user=p.user,
            trace_id=f"trace-{p.seq}",
            peer={"me": seen, "limits": seen, "ledger": ledger},
            refreshes=int(p.expired),
        )
    return Outcome(p, p.expected, rid, TIMING, body, 0.01)


def _ledger(p: Planned, rid: str) -> dict[str, Any]:
    """What the gRPC ledger answers (and records) for a request with id `rid`."""
    return {
        "call": "ledger",
        "subject": p.subject,
        "request_id": f"ledger{p.seq}",
        "parent": rid,
        "root": rid,
        "trace_id": f"trace-{p.seq}",
    }


def _lines(o: Outcome) -> list[dict[str, Any]]:
    p = o.planned
    count = {("payment", 200): 3, ("payment", 403): 3, ("room", 200): 5, ("room", 403): 3}
    base = {"request_id": o.echoed_id, "user_id": p.user, "name": "asynclocal.demo.app"}
    lines = [
        {**base, "message": f"line {i}", "subject": p.subject}
        for i in range(count[p.kind, p.expected])
    ]
    path = f"/payments/{p.seq}" if p.kind == "payment" else f"/rooms/{p.seq}/rename"
    method = "GET" if p.kind == "payment" else "POST"
    lines.append({**base, "name": "asynclocal.timing", "message": f"{method} {path} 3.0ms"})
    lines.append({**base, "name": "httpx", "message": "HTTP Request: GET /accounts/me"})
    return lines


def _records(o: Outcome) -> list[dict[str, Any]]:
    p = o.planned
    if o.status != 200:
        return []
    common = {"request_id": o.echoed_id, "nonce": p.seq}
    served = [
        {**common, "call": call, "status": 200, "gen": int(p.expired), "user": p.user}
        for call in ("me", "limits")
    ]
    served.append(_ledger(p, o.echoed_id or ""))
    if not p.expired:
        return served
    rejected = [{**common, "call": c, "status": 401, "gen": 0} for c in ("me", "limits")]
    return [*rejected, {**common, "call": "token", "status": 200, "user": p.user}, *served]


@pytest.fixture
def outcomes() -> list[Outcome]:
    return [
        _outcome(_planned(0, "payment", "alice", 200, expired=True)),
        _outcome(_planned(1, "room", "carol", 403)),
        _outcome(_planned(2, "room", "bob", 200)),
    ]


def _check(
    outcomes: list[Outcome],
    lines: list[dict[str, Any]] | None = None,
    records: list[dict[str, Any]] | None = None,
) -> Tally:
    tally, stats = Tally(), Stats()
    if lines is None:
        lines = [line for o in outcomes for line in _lines(o)]
    if records is None:
        records = [r for o in outcomes for r in _records(o)]
    check_responses(outcomes, tally, stats)
    check_logs("\n".join(json.dumps(line) for line in lines), outcomes, tally, stats)
    check_peer(records, outcomes, tally, stats)
    return tally


def _flagged(tally: Tally, text: str) -> bool:
    return any(text in m for m in tally.mixups)


def test_a_consistent_run_passes(outcomes: list[Outcome]) -> None:
    tally = _check(outcomes)
    assert tally.mixups == []
    assert tally.checks > 50


def test_a_log_line_carrying_another_requests_id_is_a_mixup(outcomes: list[Outcome]) -> None:
    lines = [line for o in outcomes for line in _lines(o)]
    lines[1]["request_id"] = outcomes[2].echoed_id
    tally = _check(outcomes, lines)
    assert _flagged(tally, "payment/0, 'line 1'): request_id")


def test_a_log_line_of_no_known_request_is_a_mixup(outcomes: list[Outcome]) -> None:
    lines = [line for o in outcomes for line in _lines(o)]
    lines.append({"request_id": "nobody", "name": "httpx", "message": "HTTP Request"})
    assert _flagged(_check(outcomes, lines), "stray 'nobody'")


def test_a_missing_log_line_and_timing_summary_are_flagged(outcomes: list[Outcome]) -> None:
    lines = [line for o in outcomes for line in _lines(o)]
    lines = [line for line in lines if line.get("message") != "line 4"]  # room/2's fifth line
    lines = [line for line in lines if line["message"] != "GET /payments/0 3.0ms"]
    tally = _check(outcomes, lines)
    assert _flagged(tally, "room/2: log lines of the request: expected 5, saw 4")
    assert _flagged(tally, "payment/0: timing summary lines: expected 1, saw 0")


def test_wrong_status_body_id_and_missing_server_timing_are_flagged(
    outcomes: list[Outcome],
) -> None:
    outcomes[1] = replace(outcomes[1], status=200)
    outcomes[2] = replace(outcomes[2], body={**(outcomes[2].body or {}), "request_id": "x"})
    outcomes[0] = replace(outcomes[0], server_timing=None)
    tally = _check(outcomes)
    assert _flagged(tally, "request 1 (room/1, carol, id valid): status: expected 403, saw 200")
    assert _flagged(tally, "request 2 (room/2, bob, id valid): request id in the body")
    assert _flagged(tally, "request 0 (payment/0, alice, id valid): Server-Timing header")


def test_an_echoed_hostile_id_is_flagged() -> None:
    p = Planned(3, "payment", "carol", False, "hostile", "id with spaces 3", 200)
    outcome = replace(_outcome(p), echoed_id="id with spaces 3")
    tally = Tally()
    check_responses([outcome], tally, Stats())
    assert _flagged(tally, "hostile id echoed")


def test_the_peer_seeing_another_id_or_user_is_flagged(outcomes: list[Outcome]) -> None:
    records = [r for o in outcomes for r in _records(o)]
    records[-2]["request_id"] = outcomes[0].echoed_id
    records[-3]["user"] = "mallory"
    tally = _check(outcomes, records=records)
    assert _flagged(tally, "request 2 (room/2) at the peer: limits id")
    assert _flagged(tally, "request 2 (room/2) at the peer: user of the token")


def test_a_second_refresh_or_a_call_after_a_403_is_flagged(outcomes: list[Outcome]) -> None:
    records = [r for o in outcomes for r in _records(o)]
    token = next(r for r in records if r["call"] == "token")
    records.append(dict(token))
    records.append({"call": "me", "status": 200, "nonce": 1, "request_id": "client-1"})
    tally = _check(outcomes, records=records)
    assert _flagged(tally, "request 0 (payment/0) at the peer: token refreshes: expected 1, saw 2")
    assert _flagged(tally, "request 1 (room/1) at the peer: calls after a 403")


def test_an_error_logged_by_the_service_is_flagged(outcomes: list[Outcome]) -> None:
    lines = [line for o in outcomes for line in _lines(o)]
    lines.append({"request_id": None, "levelname": "ERROR", "message": "Exception in ASGI app"})
    assert _flagged(_check(outcomes, lines), "Exception in ASGI app")


def test_a_grpc_hop_continuing_another_request_is_flagged(outcomes: list[Outcome]) -> None:
    body = outcomes[2].body or {}
    peer = dict(body["peer"])
    peer["ledger"] = {**peer["ledger"], "parent": outcomes[0].echoed_id, "trace_id": "other"}
    outcomes[2] = replace(outcomes[2], body={**body, "peer": peer})
    records = [r for o in outcomes for r in _records(o)]
    records[-1]["parent"] = outcomes[0].echoed_id  # the ledger booked it under request 0
    tally = _check(outcomes, records=records)
    assert _flagged(tally, "request 2 (room/2, bob, id valid): parent id the ledger (gRPC) saw")
    assert _flagged(tally, "request 2 (room/2, bob, id valid): ledger's trace id")
    assert _flagged(tally, "ledger calls with the same parent")
