"""Three real services on 127.0.0.1 (A -> B -> C) through the ASGI middleware.

One request's causation chain (root, parent, current id) and trace id must be
reassemblable across all hops, also with many requests in flight at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from asynclocal import propagation
from tests.support.servers import run_uvicorn

from ._apps import service_app

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def chain() -> Iterator[str]:
    """Start C, then B (calls C), then A (calls B); yield A's URL."""
    with (
        run_uvicorn(service_app("C", jitter=0.01)) as c_url,
        run_uvicorn(service_app("B", lambda: c_url + "/c", jitter=0.01)) as b_url,
        run_uvicorn(service_app("A", lambda: b_url + "/b", jitter=0.01)) as a_url,
    ):
        yield a_url


@pytest.fixture(autouse=True)
def configured(chain: str) -> None:
    propagation.configure(targets=[_host_only(chain)])
    propagation.install()


def _host_only(url: str) -> str:
    # every service listens on 127.0.0.1; any port of it is a target here
    return urlsplit(url).hostname or ""


def check_chain(answer: dict[str, Any], client_id: str | None = None) -> None:
    a, b = answer["ctx"], answer["downstream"]["ctx"]
    c = answer["downstream"]["downstream"]["ctx"]
    ids = [a["request_id"], b["request_id"], c["request_id"]]
    assert len(set(ids)) == 3, ids
    if client_id is not None:
        assert a["request_id"] == client_id
    assert a["parent_request_id"] is None
    assert a["root_request_id"] == a["request_id"]
    assert (b["root_request_id"], b["parent_request_id"]) == (a["request_id"], a["request_id"])
    assert (c["root_request_id"], c["parent_request_id"]) == (a["request_id"], b["request_id"])
    assert HEX32.match(a["trace_id"])
    assert a["trace_id"] == b["trace_id"] == c["trace_id"]
    assert len({a["span_id"], b["span_id"], c["span_id"]}) == 3
    # B echoed its own (fresh) id to A, not A's id
    assert answer["downstream_response_headers"]["x-request-id"] == b["request_id"]


def test_one_request_is_reassemblable_across_three_services(chain: str) -> None:
    answer = httpx.get(chain + "/a", timeout=20).json()
    check_chain(answer)
    received_by_b = answer["downstream"]["received"]
    assert received_by_b["traceparent"].split("-")[1] == answer["ctx"]["trace_id"]


def test_a_client_supplied_id_becomes_the_root(chain: str) -> None:
    answer = httpx.get(chain + "/a", headers={"X-Request-ID": "client-42"}, timeout=20).json()
    check_chain(answer, client_id="client-42")


def test_incoming_trace_is_continued_and_garbage_ignored(chain: str) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    good = httpx.get(
        chain + "/a", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}, timeout=20
    ).json()
    check_chain(good)
    assert good["ctx"]["trace_id"] == trace
    bad = httpx.get(
        chain + "/a", headers={"traceparent": "00-zz-yy-01", "baggage": ",,=\x7f"}, timeout=20
    )
    assert bad.status_code == 200
    check_chain(bad.json())
    assert bad.json()["ctx"]["trace_id"] != trace


async def test_concurrent_requests_keep_their_own_chains(chain: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> dict[str, Any]:
            response = await client.get(chain + "/a", headers={"X-Request-ID": f"client-{n}"})
            answer: dict[str, Any] = response.json()
            return answer

        answers = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(30))), 60)
    for n, answer in enumerate(answers):
        check_chain(answer, client_id=f"client-{n}")
    traces = {answer["ctx"]["trace_id"] for answer in answers}
    assert len(traces) == 30
