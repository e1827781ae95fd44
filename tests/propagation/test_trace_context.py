"""W3C Trace Context (Level 2), one test per rule, through a real service.

The service is examples/trace_context_service.py: Starlette +
`asynclocal.web.starlette.install` + the httpx integration, served by uvicorn
on 127.0.0.1. Each test sends it a request with the rule's headers and asks it
to call a recording server (also uvicorn on 127.0.0.1) one or more times; the
rule is checked on what the recorder received, as the W3C test suite does.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from asynclocal import propagation
from asynclocal.logging import ContextFilter
from asynclocal.propagation.w3c import TRACESTATE_MAX_LENGTH
from tests.support.servers import run_uvicorn

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trace_context_service.py"
TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
TP = f"00-{TRACE}-{PARENT}-01"
TP_UNSAMPLED = f"00-{TRACE}-{PARENT}-00"
TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trace_context_service", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trace_context_service"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Recorder:
    """A downstream on 127.0.0.1 that keeps the headers of every request, by path."""

    url: str = ""
    seen: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        with self.lock:
            self.seen[scope["path"]] = headers
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"null"})


@dataclass
class Callback:
    """What one call from the service carried."""

    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def traceparent(self) -> tuple[str, str, int]:
        values = self.values("traceparent")
        assert len(values) == 1, values
        match = TRACEPARENT_RE.fullmatch(values[0])
        assert match is not None, values[0]
        return match.group(1), match.group(2), int(match.group(3), 16)

    @property
    def tracestate(self) -> dict[str, str]:
        """The members sent on (asserting the list is well formed)."""
        values = self.values("tracestate")
        assert len(values) <= 1
        members: dict[str, str] = {}
        for member in values[0].split(",") if values else []:
            key, sep, value = member.partition("=")
            assert sep, member
            assert key not in members, f"duplicated key {key!r} sent on"
            members[key] = value
        return members


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Harness:
    service: str
    recorder: Recorder

    def send(self, headers: list[tuple[str, str]], count: int = 1) -> list[Callback]:
        token = uuid.uuid4().hex
        urls = [f"{self.recorder.url}/{token}.{i}" for i in range(count)]
        answer = httpx.post(
            f"{self.service}/test",
            json=[{"url": url, "arguments": []} for url in urls],
            headers=headers,
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        self.last_request_id = answer.headers["x-request-id"]
        with self.recorder.lock:
            return [Callback(self.recorder.seen.pop(f"/{token}.{i}")) for i in range(count)]

    def one(self, headers: list[tuple[str, str]]) -> Callback:
        return self.send(headers)[0]

    def send_raw(self, headers: list[tuple[str, str]]) -> Callback:
        """`one`, with the request written byte by byte (values sent exactly as given)."""
        token = uuid.uuid4().hex
        body = json.dumps([{"url": f"{self.recorder.url}/{token}.0", "arguments": []}]).encode()
        host, port = self.service.split("://", 1)[1].split(":")
        lines = [
            "POST /test HTTP/1.1",
            f"Host: {host}:{port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}:{value}" for name, value in headers),
        ]
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        with self.recorder.lock:
            return Callback(self.recorder.seen.pop(f"/{token}.0"))


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    recorder = Recorder()
    app = load_example().create_app(["127.0.0.1"])
    with run_uvicorn(recorder) as recorder_url, run_uvicorn(app) as service_url:
        recorder.url = recorder_url
        yield Harness(service_url, recorder)


@pytest.fixture(autouse=True)
def _targets() -> None:
    # the shared conftest resets the configuration around every test
    propagation.configure(targets=["127.0.0.1"])


@pytest.fixture
def call_log() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("asynclocal.propagation")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


# -- traceparent -----------------------------------------------------------


def test_no_traceparent_starts_a_trace_with_random_and_sampled_flags(harness: Harness) -> None:
    trace_id, parent_id, flags = harness.one([]).traceparent
    assert trace_id != "0" * 32
    assert parent_id != "0" * 16
    assert flags == 0x03  # sampled, random trace id (Level 2)


def test_valid_traceparent_continues_the_trace_under_a_new_parent_id(harness: Harness) -> None:
    trace_id, parent_id, flags = harness.one([("traceparent", TP)]).traceparent
    assert (trace_id, flags) == (TRACE, 0x01)
    assert parent_id != PARENT


@pytest.mark.parametrize(
    "incoming",
    [[("traceparent", TP)], [("traceparent", f"00-{'0' * 32}-{PARENT}-01")], []],
    ids=["valid", "illegal", "none"],
)
def test_every_outgoing_call_has_its_own_parent_id(
    harness: Harness, call_log: Records, incoming: list[tuple[str, str]]
) -> None:
    callbacks = harness.send(incoming, count=3)
    ids = [c.traceparent for c in callbacks]
    trace_ids = {trace_id for trace_id, _, _ in ids}
    parent_ids = [parent_id for _, parent_id, _ in ids]
    assert len(trace_ids) == 1
    assert len(set(parent_ids)) == 3
    if incoming == [("traceparent", TP)]:
        assert trace_ids == {TRACE}
        assert PARENT not in parent_ids
    else:
        assert trace_ids.isdisjoint({TRACE, "0" * 32})
    # each call's span id is in the DEBUG record of that call, attributed to the request
    logged = [r for r in call_log.records if getattr(r, "call_span_id", None) in parent_ids]
    assert sorted(r.call_span_id for r in logged) == sorted(parent_ids)  # type: ignore[attr-defined]
    for record in logged:
        assert record.request_id == harness.last_request_id  # type: ignore[attr-defined]
        assert record.trace_id in trace_ids  # type: ignore[attr-defined]
        assert record.call_target.startswith(f"POST {harness.recorder.url}/")  # type: ignore[attr-defined]
        assert record.call_span_id in record.getMessage()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    [
        f"ff-{TRACE}-{PARENT}-01",  # version 255 is forbidden
        f".0-{TRACE}-{PARENT}-01",  # version: illegal characters
        f"0-{TRACE}-{PARENT}-01",  # version: too short
        f"000-{TRACE}-{PARENT}-01",  # version: too long
        f"00-{TRACE}-{PARENT}-01.",  # version 00: trailing characters
        f"00-{TRACE}-{PARENT}-01-what-the-future-will-be-like",  # version 00: extra field
        f"00-{'0' * 32}-{PARENT}-01",  # trace-id all zero
        f"00-.{TRACE[1:]}-{PARENT}-01",  # trace-id: illegal characters
        f"00-{TRACE.upper().replace('1', 'A')}-{PARENT}-01",  # trace-id: upper-case hex
        f"00-{TRACE}3-{PARENT}-01",  # trace-id: too long
        f"00-{TRACE[:-1]}-{PARENT}-01",  # trace-id: too short
        f"00-{TRACE}-{'0' * 16}-01",  # parent-id all zero
        f"00-{TRACE}-.{PARENT[1:]}-01",  # parent-id: illegal characters
        f"00-{TRACE}-{PARENT}7-01",  # parent-id: too long
        f"00-{TRACE}-{PARENT[:-1]}-01",  # parent-id: too short
        f"00-{TRACE}-{PARENT}-.0",  # trace-flags: illegal characters
        f"00-{TRACE}-{PARENT}-001",  # trace-flags: too long
        f"00-{TRACE}-{PARENT}-1",  # trace-flags: too short
        f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like",  # future version, no dash
    ],
)
def test_invalid_traceparent_restarts_the_trace(harness: Harness, value: str) -> None:
    callback = harness.one([("traceparent", value), ("tracestate", "foo=1")])
    trace_id, _, _ = callback.traceparent
    assert trace_id != TRACE
    assert trace_id != "0" * 32
    assert "foo" not in callback.tracestate  # the tracestate goes with its traceparent


@pytest.mark.parametrize(
    "value",
    [f"cc-{TRACE}-{PARENT}-01", f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"],
)
def test_higher_version_is_parsed_as_version_00(harness: Harness, value: str) -> None:
    trace_id, parent_id, _ = harness.one([("traceparent", value)]).traceparent
    assert trace_id == TRACE
    assert parent_id != PARENT


def test_duplicated_traceparent_headers_are_invalid(harness: Harness) -> None:
    trace_id, _, _ = harness.one(
        [("traceparent", f"00-{TRACE[:-1]}1-{PARENT}-01"), ("traceparent", TP)]
    ).traceparent
    assert trace_id not in (TRACE, f"{TRACE[:-1]}1")


@pytest.mark.parametrize("name", ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"])
def test_traceparent_header_name_is_case_insensitive(harness: Harness, name: str) -> None:
    assert harness.one([(name, TP)]).traceparent[0] == TRACE


@pytest.mark.parametrize("name", ["trace-parent", "trace.parent"])
def test_other_header_names_are_not_traceparent(harness: Harness, name: str) -> None:
    assert harness.one([(name, TP)]).traceparent[0] != TRACE


@pytest.mark.parametrize("value", [f" {TP}", f"\t{TP}", f"{TP} ", f"{TP}\t", f"\t {TP} \t"])
def test_traceparent_surrounding_whitespace_is_ignored(harness: Harness, value: str) -> None:
    # httpx refuses to send such a value: write the request by hand
    callback = harness.send_raw([("traceparent", value)])
    assert callback.traceparent[0] == TRACE
    # carriers no HTTP server trimmed (message headers, Lambda events) too
    assert propagation.extract({"traceparent": value}).trace_id == TRACE


def test_random_flag_is_propagated_and_unknown_flags_cleared(harness: Harness) -> None:
    assert harness.one([("traceparent", f"00-{TRACE}-{PARENT}-02")]).traceparent[2] == 0x02
    assert harness.one([("traceparent", f"00-{TRACE}-{PARENT}-00")]).traceparent[2] == 0x00
    # flags this version does not define are set to zero on the way out
    assert harness.one([("traceparent", f"00-{TRACE}-{PARENT}-ff")]).traceparent[2] == 0x03


# -- tracestate ------------------------------------------------------------


def test_tracestate_without_traceparent_is_discarded(harness: Harness) -> None:
    callback = harness.one([("tracestate", "foo=1,bar=2")])
    assert callback.traceparent[0] != TRACE
    assert callback.tracestate == {}


def test_tracestate_is_passed_on_with_its_traceparent(harness: Harness) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", "foo=1,bar=2")])
    assert callback.traceparent[0] == TRACE
    assert callback.values("tracestate") == ["foo=1,bar=2"]


def test_multiple_tracestate_headers_are_combined_in_order(harness: Harness) -> None:
    callback = harness.one(
        [
            ("traceparent", TP_UNSAMPLED),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ]
    )
    assert callback.values("tracestate") == ["foo=1,bar=2,rojo=1,congo=2,baz=3"]


@pytest.mark.parametrize("name", ["TraceState", "TrAcEsTaTe", "TRACESTATE"])
def test_tracestate_header_name_is_case_insensitive(harness: Harness, name: str) -> None:
    assert harness.one([("traceparent", TP_UNSAMPLED), (name, "foo=1")]).tracestate == {"foo": "1"}


@pytest.mark.parametrize("name", ["trace-state", "trace.state"])
def test_other_header_names_are_not_tracestate(harness: Harness, name: str) -> None:
    assert harness.one([("traceparent", TP_UNSAMPLED), (name, "foo=1")]).tracestate == {}


@pytest.mark.parametrize(
    "headers",
    [
        [("tracestate", "")],
        [("tracestate", "foo=1"), ("tracestate", "")],
        [("tracestate", ""), ("tracestate", "foo=1")],
    ],
)
def test_empty_tracestate_is_accepted_and_not_sent(
    harness: Harness, headers: list[tuple[str, str]]
) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), *headers])
    assert callback.traceparent[0] == TRACE
    assert "" not in callback.values("tracestate")


@pytest.mark.parametrize(
    "key",
    [
        "foo@",
        "foo@@bar",
        "foo@bar@baz",
        "t@" + "v" * 15,
        "t" * 241 + "@" + "v" * 14,
        "t" * 242 + "@v",  # 244 characters ending in "@v"
        "z" * 256,  # the longest key
        "0abc",  # a digit may start a key
        "a_b-c*d/e",
    ],
)
def test_tracestate_keys_of_the_current_grammar_are_passed_on(harness: Harness, key: str) -> None:
    callback = harness.one(
        [("traceparent", TP_UNSAMPLED), ("tracestate", "foo=1"), ("tracestate", f"{key}=1")]
    )
    assert callback.tracestate == {"foo": "1", key: "1"}


@pytest.mark.parametrize(
    "member", ["z" * 257 + "=1", "@foo=1", "FOO=1", "foo =1", "foo.bar=1", "_foo=1"]
)
def test_a_key_outside_the_grammar_discards_the_tracestate(harness: Harness, member: str) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", f"bar=2,{member}")])
    assert callback.traceparent[0] == TRACE  # the trace itself is continued
    assert callback.tracestate == {}


@pytest.mark.parametrize(
    "headers",
    [
        [("tracestate", "foo=1,foo=1")],
        [("tracestate", "foo=1,foo=2")],
        [("tracestate", "foo=1"), ("tracestate", "foo=1")],
        [("tracestate", "foo=1"), ("tracestate", "foo=2")],
    ],
)
def test_duplicated_keys_continue_the_trace_and_keep_the_key(
    harness: Harness, headers: list[tuple[str, str]]
) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), *headers])
    assert callback.traceparent[0] == TRACE
    assert callback.tracestate == {"foo": "1"}  # the first one kept, the duplicate dropped


def test_32_members_pass_33_discard_the_tracestate(harness: Harness) -> None:
    members = [f"bar{i:02d}={i:02d}" for i in range(1, 34)]
    kept = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", ",".join(members[:32]))])
    assert len(kept.tracestate) == 32
    assert kept.tracestate["bar01"] == "01"
    dropped = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", ",".join(members))])
    assert dropped.traceparent[0] == TRACE
    assert dropped.tracestate == {}


@pytest.mark.parametrize(
    "value", ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"]
)
def test_whitespace_around_members_is_optional(harness: Harness, value: str) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", value)])
    assert callback.values("tracestate") == ["foo=1,bar=2,baz=3"]


def test_value_leading_spaces_are_kept_trailing_ones_dropped(harness: Harness) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", "foo=  1  ,bar=2")])
    assert callback.tracestate == {"foo": "  1", "bar": "2"}


@pytest.mark.parametrize("value", ["foo=bar=baz", "foo=,bar=3", "foo=1,bar"])
def test_a_value_outside_the_grammar_discards_the_tracestate(harness: Harness, value: str) -> None:
    callback = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", value)])
    assert callback.traceparent[0] == TRACE
    assert callback.tracestate == {}


def test_all_allowed_characters_pass(harness: Harness) -> None:
    key = "".join(map(chr, range(0x61, 0x7B))) + "0123456789_-*/"
    vendor_key = key + "@a-z0-9_-*/"
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
    for k in (key, vendor_key):
        callback = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", f"{k}={value}")])
        assert callback.tracestate == {k: value}


def test_long_tracestate_is_cut_by_whole_members_long_ones_first(harness: Harness) -> None:
    big = "big=" + "x" * 200  # over 128 characters: the first to go
    small = [f"k{i:02d}={'v' * 20}" for i in range(20)]  # 24 characters each
    callback = harness.one(
        [("traceparent", TP_UNSAMPLED), ("tracestate", ",".join([small[0], big, *small[1:]]))]
    )
    sent = callback.values("tracestate")[0]
    assert len(sent) <= TRACESTATE_MAX_LENGTH
    assert "big" not in callback.tracestate
    assert list(callback.tracestate) == [f"k{i:02d}" for i in range(20)]  # all fit, in order
    many = [f"k{i:02d}={'v' * 28}" for i in range(32)]  # 32 characters each: 1055 in all
    cut = harness.one([("traceparent", TP_UNSAMPLED), ("tracestate", ",".join(many))])
    kept = cut.values("tracestate")[0]
    assert len(kept) <= TRACESTATE_MAX_LENGTH
    assert kept == ",".join(many[: len(cut.tracestate)])  # cut from the right, whole members
    assert len(cut.tracestate) == 15
