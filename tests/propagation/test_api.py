"""inject / extract / continue_request: the contract other carriers (Celery, Lambda) rely on."""

from __future__ import annotations

import random
import re

import pytest

from asynclocal import propagation
from asynclocal.propagation import (
    PropagatedContext,
    PropagationTargets,
    continue_request,
    extract,
    inject,
    w3c,
)
from asynclocal.request import RequestContext, request_storage, with_request_context

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def make_ctx(**kwargs: object) -> RequestContext:
    ctx = RequestContext("req-a", **kwargs)  # type: ignore[arg-type]
    ctx.root_request_id = "root-0"
    return ctx


def test_inject_writes_ids_and_trace_of_the_current_request() -> None:
    ctx = make_ctx()
    headers: dict[str, str] = {}
    with request_storage.scope(ctx):
        inject(headers)
    assert headers["x-request-id"] == "req-a"
    assert headers["x-root-request-id"] == "root-0"
    parsed = w3c.parse_traceparent(headers["traceparent"])
    assert parsed is not None
    # the request had no trace: one was started and kept for the rest of the request;
    # the call carries a span id of its own, and the random trace id flag
    assert parsed.trace_id == ctx.trace_id
    assert parsed.span_id != ctx.span_id
    assert parsed.trace_flags == 0x03
    assert "baggage" not in headers


def test_inject_outside_a_request_writes_nothing() -> None:
    headers: dict[str, str] = {}
    inject(headers)
    assert headers == {}


def test_inject_with_explicit_request() -> None:
    ctx = make_ctx(trace_id=TRACE, span_id=SPAN)
    headers: dict[str, str] = {}
    span_id = inject(headers, request=ctx)
    assert headers["traceparent"] == f"00-{TRACE}-{span_id}-03"
    assert span_id != SPAN
    with pytest.raises(TypeError, match="RequestContext"):
        inject(headers, request="req-a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mutable mapping"):
        inject(("a", "b"), request=ctx)  # type: ignore[arg-type]


def test_round_trip_builds_the_causation_chain() -> None:
    caller = make_ctx(trace_id=TRACE, span_id=SPAN)
    headers: dict[str, str] = {}
    call_span = inject(headers, request=caller)
    propagated = extract(headers)
    assert propagated == PropagatedContext(
        request_id="req-a",
        root_request_id="root-0",
        parent_request_id="req-a",
        trace_id=TRACE,
        parent_span_id=call_span,
        trace_flags=3,
        tracestate=None,
        baggage=propagated.baggage,
    )
    hop = continue_request(propagated, method="POST", path="/pay")
    assert hop.request_id != "req-a"
    assert HEX32.match(hop.request_id)
    assert (hop.root_request_id, hop.parent_request_id) == ("root-0", "req-a")
    assert hop.trace_id == TRACE
    assert hop.span_id != SPAN
    assert HEX16.match(hop.span_id or "")
    assert (hop.method, hop.path) == ("POST", "/pay")
    # the next hop continues from this one
    again: dict[str, str] = {}
    inject(again, request=hop)
    third = continue_request(extract(again))
    assert (third.root_request_id, third.parent_request_id) == ("root-0", hop.request_id)
    assert third.trace_id == TRACE


def test_reuse_request_id_keeps_the_callers_id() -> None:
    propagation.configure(reuse_request_id=True)
    hop = continue_request(extract({"x-request-id": "abc", "x-root-request-id": "root"}))
    assert hop.request_id == "abc"
    assert hop.root_request_id == "root"
    assert hop.parent_request_id is None  # the chain collapses into one id


def test_gateway_request_id_without_root_header_is_not_a_parent() -> None:
    propagated = extract({"X-Request-ID": "from-nginx"})
    assert propagated.request_id == "from-nginx"
    assert propagated.parent_request_id is None
    hop = continue_request(propagated)
    assert hop.parent_request_id is None
    assert hop.root_request_id == hop.request_id


def test_extract_is_case_insensitive_and_tracestate_travels() -> None:
    propagated = extract(
        {
            "TraceParent": f"00-{TRACE}-{SPAN}-00",
            "TRACESTATE": "congo=t61rcWkgMzE",
            "X-Request-Id": "r1",
            "X-Root-Request-Id": "r0",
        }
    )
    assert (propagated.trace_id, propagated.trace_flags) == (TRACE, 0)
    assert propagated.tracestate == "congo=t61rcWkgMzE"
    hop = continue_request(propagated)
    out: dict[str, str] = {}
    call_span = inject(out, request=hop)
    assert out["traceparent"] == f"00-{TRACE}-{call_span}-00"  # not sampled stays not sampled
    assert out["tracestate"] == "congo=t61rcWkgMzE"


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": "00-garbage", "baggage": "\x00\x01,,==;;"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01", "tracestate": "a=1"},
        {"x-request-id": "bad id\r\nX-Evil: 1", "x-root-request-id": "r"},
        {"x-request-id": "a" * 129},
        {"traceparent": 42, "baggage": ["x=1"]},
        {},
    ],
)
def test_malformed_input_starts_a_fresh_trace_without_raising(carrier: dict[str, object]) -> None:
    propagated = extract(carrier)  # type: ignore[arg-type]
    assert propagated.trace_id is None
    assert propagated.tracestate is None
    assert propagated.request_id is None
    hop = continue_request(propagated)
    assert HEX32.match(hop.trace_id or "")
    assert HEX16.match(hop.span_id or "")
    assert hop.parent_request_id is None


def test_extract_never_raises_on_random_garbage() -> None:
    rng = random.Random(7)
    chars = "abcdef0123456789-=,;% \t\r\n\x00é😀"
    names = ["traceparent", "tracestate", "baggage", "x-request-id", "x-root-request-id"]
    for _ in range(500):
        carrier = {
            name: "".join(rng.choice(chars) for _ in range(rng.randint(0, 80))) for name in names
        }
        extract(carrier)
    for junk in (None, 3, "traceparent", object(), [("traceparent", "x")]):
        assert extract(junk).is_empty  # type: ignore[arg-type]


def test_secrets_never_propagate_by_default() -> None:
    propagation.configure(baggage_fields=["tenant"])
    ctx = make_ctx(
        access_token="tok-secret",
        refresh_token="refresh-secret",
        headers={"cookie": "session=cookie-secret"},
        fields={"tenant": "acme", "password": "pw-secret"},
    )
    headers: dict[str, str] = {}
    inject(headers, request=ctx)
    text = repr(headers)
    for secret in ("tok-secret", "refresh-secret", "cookie-secret", "pw-secret"):
        assert secret not in text
    assert headers["baggage"] == "tenant=acme"


def test_secrets_travel_only_when_allow_listed_by_name() -> None:
    propagation.configure(baggage_fields=["access_token", "user_id"])
    ctx = make_ctx(access_token="tok 1", user={"id": 42})
    headers: dict[str, str] = {}
    inject(headers, request=ctx)
    hop = continue_request(extract(headers))
    assert hop.access_token == "tok 1"
    assert hop.user_id == "42"


def test_incoming_baggage_sets_only_allow_listed_fields() -> None:
    propagation.configure(baggage_fields=["tenant"])
    propagated = extract({"baggage": "tenant=acme,access_token=stolen,role=admin"})
    assert dict(propagated.baggage) == {"tenant": "acme", "access_token": "stolen", "role": "admin"}
    hop = continue_request(propagated)
    assert dict(hop.fields) == {"tenant": "acme"}
    assert hop.access_token is None


def test_inject_merges_into_existing_baggage() -> None:
    propagation.configure(baggage_fields=["tenant"])
    headers = {"baggage": "other=1,tenant=old"}
    inject(headers, request=make_ctx(fields={"tenant": "new"}))
    assert w3c.parse_baggage(headers["baggage"]) == {"other": "1", "tenant": "new"}


def test_header_names_are_configurable() -> None:
    propagation.configure(request_id_header="X-Correlation-ID", root_request_id_header=None)
    headers: dict[str, str] = {}
    inject(headers, request=make_ctx())
    assert headers["x-correlation-id"] == "req-a"
    assert "x-request-id" not in headers
    assert "x-root-request-id" not in headers
    # without a root header every incoming id is treated as the caller's
    assert extract({"x-correlation-id": "c1"}).parent_request_id == "c1"
    propagation.configure(trace_context=False)
    headers = {}
    inject(headers, request=make_ctx())
    assert "traceparent" not in headers
    assert extract({"traceparent": f"00-{TRACE}-{SPAN}-01"}).trace_id is None


def test_configure_validates_its_input() -> None:
    with pytest.raises(ValueError, match="header name"):
        propagation.configure(request_id_header="bad header")
    with pytest.raises(ValueError, match="Baggage keys"):
        propagation.configure(baggage_fields=["ok", "not ok"])
    with pytest.raises(TypeError, match="bool"):
        propagation.configure(sampled="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="propagation target"):
        propagation.configure(targets=["http://[::1"])
    with pytest.raises(TypeError, match="callable"):
        propagation.configure(id_generator="uuid")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown fields"):
        continue_request(PropagatedContext(), tenant="x")
    with pytest.raises(TypeError, match="PropagatedContext"):
        continue_request({"x-request-id": "a"})  # type: ignore[arg-type]


def test_custom_id_generator() -> None:
    propagation.configure(id_generator=lambda: "hop-7")
    assert continue_request(extract({})).request_id == "hop-7"
    propagation.configure(id_generator=lambda: "")
    with pytest.raises(TypeError, match="id_generator"):
        continue_request(extract({}))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://api.internal/x", True),
        ("https://api.internal:8443/x", True),
        ("http://API.Internal/x", True),
        ("http://api.internal.evil.com/x", False),
        ("http://a.svc.local/x", True),
        ("http://b.a.svc.local/x", True),
        ("http://svc.local/x", False),
        ("http://127.0.0.1:9000/", True),
        ("http://127.0.0.1:9001/", False),
        ("https://pay.example.com/v1/charge", True),
        ("https://pay.example.com/v2/charge", False),
        ("http://pay.example.com/v1/charge", False),
        ("http://[::1]:8080/", True),
        ("http://third.party/", False),
        ("not a url", False),
        ("http://regex-host.io/", True),
    ],
)
def test_target_patterns(url: str, expected: bool) -> None:
    targets = PropagationTargets(
        [
            "api.internal",
            "*.svc.local",
            "127.0.0.1:9000",
            "https://pay.example.com/v1/",
            "[::1]:8080",
            re.compile(r"^http://regex-host\.io/"),
        ]
    )
    assert targets.matches(url) is expected


def test_empty_targets_match_nothing_and_star_matches_everything() -> None:
    assert not PropagationTargets().matches("http://127.0.0.1/")
    assert PropagationTargets(["*"]).matches("https://anything.example/")
    assert PropagationTargets([lambda url: "ok" in url]).matches("http://ok/")

    def broken(url: str) -> bool:
        raise RuntimeError("boom")

    assert not PropagationTargets([broken]).matches("http://ok/")


def test_install_makes_with_request_context_continue_the_caller() -> None:
    propagation.install()
    caller = make_ctx(trace_id=TRACE, span_id=SPAN)
    headers: dict[str, str] = {}
    inject(headers, request=caller)

    def handler() -> RequestContext:
        return request_storage.get_store()  # type: ignore[return-value]

    hop = with_request_context(headers, handler)
    # the middleware adopted the caller's x-request-id; the hop got its own id instead
    assert hop.request_id != "req-a"
    assert (hop.root_request_id, hop.parent_request_id) == ("root-0", "req-a")
    assert hop.trace_id == TRACE
    assert hop.span_id != SPAN
    assert propagation.installed()
    propagation.uninstall()
    assert not propagation.installed()
    plain = with_request_context(headers, handler)
    assert plain.request_id == "req-a"
    assert plain.parent_request_id is None


def test_install_starts_a_trace_for_requests_without_one() -> None:
    propagation.install()
    ctx = with_request_context({"traceparent": "00-broken"}, lambda: request_storage.get_store())
    assert ctx is not None
    assert HEX32.match(ctx.trace_id or "")
