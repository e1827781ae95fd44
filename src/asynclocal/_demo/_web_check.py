"""The web demo's checks: every response, every JSON log line and every call the peer saw.

A request is identified by its sequence number, carried in the URL, in the
domain arguments (the ``subject`` of each log line) and in the token nonce the
peer reads, never by a request id. So each request id below is compared with
what belongs to *that* request; a context mix-up anywhere shows as a failure.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._base import Tally
from ._web_client import Outcome

__all__ = ["Stats", "check_logs", "check_peer", "check_responses"]

_VALID_ID = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}")
_TIMING_SUBJECT = re.compile(r"^(?:GET|POST) /(payments|rooms)/(\d+)")

# Log lines with a subject each request writes (the timing summary is counted apart).
_LINES = {("payment", 200): 3, ("payment", 403): 3, ("room", 200): 5, ("room", 403): 3}


@dataclass
class Stats:
    """What the summary reports besides checks and mix-ups."""

    forbidden: int = 0
    refreshes: int = 0
    log_lines: int = 0
    peer_calls: int = 0


def check_responses(outcomes: Iterable[Outcome], tally: Tally, stats: Stats) -> None:
    """Status, echoed id, id in the body, ``Server-Timing``, the peer's view, refresh count."""
    for o in outcomes:
        p = o.planned
        where = f"request {p.seq} ({p.subject}, {p.user}, id {p.id_mode})"
        if o.error is not None:
            tally.check("a response", o.error, where)
            continue
        tally.check(p.expected, o.status, f"{where}: status")
        stats.forbidden += o.status == 403
        echoed = o.echoed_id or ""
        tally.check(True, bool(_VALID_ID.fullmatch(echoed)), f"{where}: echoed id {echoed!r:.60}")
        if p.id_mode == "valid":
            tally.check(p.sent_id, echoed, f"{where}: valid incoming id echoed")
        elif p.id_mode == "hostile":
            sent = p.sent_id.decode("latin-1") if isinstance(p.sent_id, bytes) else p.sent_id
            tally.check(False, echoed == sent, f"{where}: hostile id echoed")
        body = o.body or {}
        tally.check(echoed, body.get("request_id"), f"{where}: request id in the body")
        timing = o.server_timing or ""
        tally.check(True, "total;dur=" in timing, f"{where}: Server-Timing header")
        if o.status != 200:
            continue
        tally.check(True, "repository." in timing, f"{where}: repository span in Server-Timing")
        tally.check(p.user, body.get("user"), f"{where}: user read from the cookie")
        peer = body.get("peer") or {}
        for call in ("me", "limits"):
            seen = peer.get(call) or {}
            tally.check(echoed, seen.get("request_id"), f"{where}: request id the peer saw")
            tally.check(p.user, seen.get("user"), f"{where}: user of the token the peer got")
        tally.check(int(p.expired), body.get("refreshes"), f"{where}: refreshes in the request")
        ledger = peer.get("ledger") or {}
        # The gRPC hop: a request of its own, continuing this one (same trace, same root).
        tally.check(echoed, ledger.get("parent"), f"{where}: parent id the ledger (gRPC) saw")
        tally.check(echoed, ledger.get("root"), f"{where}: root id the ledger saw")
        tally.check(body.get("trace_id"), ledger.get("trace_id"), f"{where}: ledger's trace id")
        tally.check(p.subject, ledger.get("subject"), f"{where}: subject the ledger booked")
        own = ledger.get("request_id") or ""
        tally.check(True, bool(_VALID_ID.fullmatch(own)) and own != echoed, f"{where}: ledger id")


def _subject(line: dict[str, Any]) -> str | None:
    subject = line.get("subject")
    if isinstance(subject, str):
        return subject
    audit = line.get("audit")
    if isinstance(audit, dict) and isinstance(audit.get("target"), str):
        return str(audit["target"])
    if line.get("name") == "asynclocal.timing":
        found = _TIMING_SUBJECT.match(str(line.get("message", "")))
        if found:
            return f"{'payment' if found[1] == 'payments' else 'room'}/{found[2]}"
    return None


def check_logs(text: str, outcomes: list[Outcome], tally: Tally, stats: Stats) -> None:
    """Every JSON line carries the id and user of the request whose subject it names."""
    by_subject = {o.planned.subject: o for o in outcomes if o.error is None}
    echoed = {o.echoed_id for o in by_subject.values()}
    lines: Counter[str] = Counter()
    timings: Counter[str] = Counter()
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        stats.log_lines += 1
        try:
            line = json.loads(raw)
        except ValueError:
            tally.check("a JSON object", raw[:80], f"log line {number}")
            continue
        if line.get("levelname") in ("ERROR", "CRITICAL"):
            tally.check("no errors", str(line.get("message"))[:200], f"log line {number}")
        rid, subject = line.get("request_id"), _subject(line)
        owner = by_subject.get(subject) if subject is not None else None
        if owner is None or subject is None:
            # Not tied to a known request (e.g. a server warning): it must not claim one.
            tally.check(True, rid is None or rid in echoed, f"log line {number}: stray {rid!r}")
            continue
        where = f"log line {number} ({subject}, {line.get('message', '')!r:.40})"
        tally.check(owner.echoed_id, rid, f"{where}: request_id")
        tally.check(owner.planned.user, line.get("user_id"), f"{where}: user_id")
        if line.get("name") == "asynclocal.timing":
            timings[subject] += 1
        else:
            lines[subject] += 1
    for subject, o in by_subject.items():
        want = _LINES.get((o.planned.kind, o.status))
        if want is not None:
            tally.check(want, lines[subject], f"{subject}: log lines of the request")
        tally.check(1, timings[subject], f"{subject}: timing summary lines")


def check_peer(
    records: list[dict[str, Any]], outcomes: list[Outcome], tally: Tally, stats: Stats
) -> None:
    """The peer saw each request's own id and token, and one refresh per expired token."""
    ledger = [r for r in records if r.get("call") == "ledger"]
    records = [r for r in records if r.get("call") != "ledger"]
    by_nonce: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_nonce[record.get("nonce")].append(record)
    stats.peer_calls = len(records) + len(ledger)
    # Every gRPC call the ledger served belongs to exactly one answered request.
    answered = {o.echoed_id: o for o in outcomes if o.error is None and o.status == 200}
    parents = [r.get("parent") for r in ledger]
    tally.check(len(answered), len(ledger), "ledger (gRPC) calls, one per answered request")
    tally.check(len(parents), len(set(parents)), "ledger calls with the same parent")
    for booking in ledger:
        owner = answered.get(booking.get("parent"))
        at = f"ledger call for {booking.get('subject')!r:.60}"
        tally.check(True, owner is not None, f"{at}: parent is an answered request")
        if owner is not None:
            tally.check(owner.planned.subject, booking.get("subject"), f"{at}: subject")
    stats.refreshes = sum(1 for r in records if r.get("call") == "token" and r["status"] == 200)
    known = {o.planned.seq for o in outcomes}
    for nonce in by_nonce:
        tally.check(True, nonce in known, f"peer call with unknown token nonce {nonce!r}")
    for o in outcomes:
        if o.error is not None:
            continue
        p = o.planned
        where = f"request {p.seq} ({p.subject}) at the peer"
        mine = by_nonce.get(p.seq, [])
        for record in mine:
            tally.check(o.echoed_id, record.get("request_id"), f"{where}: {record['call']} id")
        if o.status != 200:
            tally.check(0, len(mine), f"{where}: calls after a {o.status}")
            continue
        served = [r for r in mine if r["call"] != "token" and r["status"] == 200]
        tally.check(2, len(served), f"{where}: accounts calls answered")
        for record in served:
            tally.check(p.user, record.get("user"), f"{where}: user of the token")
            tally.check(int(p.expired), record.get("gen"), f"{where}: token generation")
        refreshed = [r for r in mine if r["call"] == "token"]
        tally.check(int(p.expired), len(refreshed), f"{where}: token refreshes")
        rejected = [r for r in mine if r["call"] != "token" and r["status"] == 401]
        tally.check(True, len(rejected) <= (2 if p.expired else 0), f"{where}: 401s")
