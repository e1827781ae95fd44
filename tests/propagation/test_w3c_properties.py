"""Property tests of the W3C parsers and `extract`, against the specifications' grammars.

Inputs are generated from the ABNF of W3C Trace Context (Level 2) and W3C
Baggage, then mutated (a character inserted, dropped or replaced by one from
a hostile alphabet: CR, LF, NUL, commas, non-ASCII...). Every accepted value
is checked against a reference reading of the grammar written here
character by character (not the parsers' own regexes). Properties: never
raises, never accepts what the grammar forbids, never sends on or logs a
rejected raw value, output bounded, cost linear (growth ratios between input
sizes, never an absolute time).

``ASYNCLOCAL_HYPOTHESIS_EXAMPLES`` sets the examples per property (default 200).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynclocal import propagation
from asynclocal._header_rules import header_problem
from asynclocal.propagation import w3c

EXAMPLES = int(os.environ.get("ASYNCLOCAL_HYPOTHESIS_EXAMPLES", "200"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MARK = "Q7MARKZ"  # in every hostile value: finding it in output or logs is a leak

# -- the grammars, read character by character ------------------------------

HEXDIGLC = "0123456789abcdef"
LCALPHA = "abcdefghijklmnopqrstuvwxyz"
DIGIT = "0123456789"
KEYCHAR = LCALPHA + DIGIT + "_-*/@"
NBLK_CHR = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",=")
CHR = " " + NBLK_CHR
TCHAR = "!#$%&'*+-.^_`|~" + DIGIT + LCALPHA + LCALPHA.upper()
BAGGAGE_OCTET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
HOSTILE = "\n\r\x00\x0b\x7f,;= \t-@%é\u2028"


def ref_traceparent(value: str) -> bool:
    """Level 2 traceparent, OWS around it allowed, a higher version's extra fields allowed."""
    v = value.strip(" \t")
    if len(v) < 55:
        return False
    version, trace_id, parent_id, flags = v[0:2], v[3:35], v[36:52], v[53:55]
    if not all(c in HEXDIGLC for c in version + trace_id + parent_id + flags):
        return False
    if (v[2], v[35], v[52]) != ("-", "-", "-") or version == "ff":
        return False
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return False
    rest = v[55:]
    if version == "00":
        return rest == ""
    return rest == "" or (rest[0] == "-" and all(0x20 <= ord(c) <= 0x7E and c != "," for c in rest))


def ref_ts_key(key: str) -> bool:
    return 1 <= len(key) <= 256 and key[0] in LCALPHA + DIGIT and all(c in KEYCHAR for c in key)


def ref_ts_value(value: str) -> bool:
    return 1 <= len(value) <= 256 and all(c in CHR for c in value) and value[-1] != " "


def ref_tracestate_members(value: str) -> list[tuple[str, str]] | None:
    """The list members, or None when a member breaks the grammar."""
    members = []
    for raw in value.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, val = member.partition("=")
        if not sep or not ref_ts_key(key) or not ref_ts_value(val):
            return None
        members.append((key, val))
    return members


def ref_baggage_key(key: str) -> bool:
    return len(key) > 0 and all(c in TCHAR for c in key)


# -- strategies from the ABNF ---------------------------------------------------


def hexstr(n: int) -> st.SearchStrategy[str]:
    return st.text(HEXDIGLC, min_size=n, max_size=n)


@st.composite
def traceparents(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["00", "00", "00", "01", "cc", "fe", "ff"]) | hexstr(2))
    trace_id = draw(hexstr(32) | st.just("0" * 32))
    parent_id = draw(hexstr(16) | st.just("0" * 16))
    flags = draw(hexstr(2))
    rest = draw(st.just("") | st.text(CHR, max_size=20).map(lambda s: "-" + s))
    ows = st.text(" \t", max_size=3)
    return f"{draw(ows)}{version}-{trace_id}-{parent_id}-{flags}{rest}{draw(ows)}"


def ts_keys() -> st.SearchStrategy[str]:
    return st.builds(
        lambda first, tail: first + tail,
        st.sampled_from(LCALPHA + DIGIT),
        st.text(KEYCHAR, max_size=255) | st.text(KEYCHAR, min_size=250, max_size=260),
    )


def ts_values() -> st.SearchStrategy[str]:
    return st.builds(
        lambda head, last: head + last,
        st.text(CHR, max_size=40) | st.text(CHR, min_size=250, max_size=260),
        st.sampled_from(NBLK_CHR),
    )


@st.composite
def tracestates(draw: st.DrawFn) -> str:
    ows = st.text(" \t", max_size=2)
    members = draw(
        st.lists(
            st.builds(lambda k, v: f"{k}={v}", ts_keys(), ts_values()) | st.just(""),
            max_size=36,
        )
    )
    if members and draw(st.booleans()):  # a duplicated key
        members.append(members[0])
    return ",".join(f"{draw(ows)}{m}{draw(ows)}" for m in members)


@st.composite
def baggages(draw: st.DrawFn) -> str:
    key = st.text(TCHAR, min_size=1, max_size=20)
    value = st.text(BAGGAGE_OCTET, max_size=40)
    prop = st.just("") | st.text(TCHAR, min_size=1, max_size=5).map(lambda p: ";" + p)
    members = draw(
        st.lists(st.builds(lambda k, v, p: f"{k}={v}{p}", key, value, prop), max_size=200)
    )
    return ",".join(members)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A value of `base`, possibly with a few characters inserted, dropped or replaced."""
    text = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["insert", "drop", "replace", "append"]))
        c = draw(st.sampled_from(HOSTILE))
        if op == "insert":
            text = text[:i] + c + text[i:]
        elif op == "drop":
            text = text[:i] + text[i + 1 :]
        elif op == "replace":
            text = text[:i] + c + text[i + 1 :]
        else:
            text += c
    return text


any_text = st.text(HEXDIGLC + HOSTILE + "=azAZ09", max_size=120)

# -- traceparent ----------------------------------------------------------------


@PROPS
@given(mutated(traceparents()) | any_text)
def test_traceparent_accepts_exactly_the_grammar(value: str) -> None:
    parsed = w3c.parse_traceparent(value)
    assert (parsed is not None) == ref_traceparent(value), repr(value)
    if parsed is not None:
        v = value.strip(" \t")
        assert (parsed.trace_id, parsed.span_id, parsed.trace_flags) == (
            v[3:35],
            v[36:52],
            int(v[53:55], 16),
        )
        sent = w3c.format_traceparent(*parsed)
        assert len(sent) == 55
        assert ref_traceparent(sent)
        assert int(sent[53:], 16) & ~w3c.KNOWN_FLAGS == 0


# -- tracestate -----------------------------------------------------------------


@PROPS
@given(mutated(tracestates()) | any_text)
def test_tracestate_accepts_only_the_grammar_and_stays_bounded(value: str) -> None:
    out = w3c.parse_tracestate(value)
    reference = ref_tracestate_members(value)
    if reference is None or len(reference) > w3c.TRACESTATE_MAX_MEMBERS or not reference:
        assert out is None, repr(value)
        return
    first: dict[str, str] = {}
    for key, val in reference:
        first.setdefault(key, val)
    if out is None:
        # Cutting to the bound removed everything: one member, longer than the bound.
        assert len(first) == 1, repr(value)
        ((only_key, only_value),) = first.items()
        assert len(only_key) + 1 + len(only_value) > w3c.TRACESTATE_MAX_LENGTH
        return
    assert len(out) <= w3c.TRACESTATE_MAX_LENGTH
    members = [tuple(m.split("=", 1)) for m in out.split(",")]
    assert len(members) <= w3c.TRACESTATE_MAX_MEMBERS
    keys = [k for k, _ in members]
    assert len(set(keys)) == len(keys)  # never a duplicated key
    for key, val in members:
        assert ref_ts_key(key)
        assert ref_ts_value(val)
    # whole members of the input, in their order; the first of duplicated keys
    assert all(first[k] == v for k, v in members)
    order = list(first)
    assert [order.index(k) for k in keys] == sorted(order.index(k) for k in keys)
    unique_length = sum(len(k) + len(v) + 1 for k, v in first.items()) + len(first) - 1
    if unique_length <= w3c.TRACESTATE_MAX_LENGTH:
        assert members == list(first.items())  # nothing cut when it fits


def test_a_lone_member_longer_than_the_bound_leaves_no_tracestate() -> None:
    # 1 + 255 key characters, "=", 256 value characters: 513 > 512, and nothing else to keep.
    assert w3c.parse_tracestate("a" + "0" * 255 + "=" + "0" * 255 + "!") is None


# -- baggage ----------------------------------------------------------------------


@PROPS
@given(mutated(baggages()) | any_text | st.text(max_size=300))
def test_baggage_accepts_only_the_grammar_and_stays_bounded(value: str) -> None:
    parsed = w3c.parse_baggage(value)
    assert len(parsed) <= w3c.BAGGAGE_MAX_MEMBERS
    for key, val in parsed.items():
        assert ref_baggage_key(key), repr(key)
        assert all(ord(c) >= 32 and ord(c) != 127 for c in val), repr(val)
    encoded = w3c.format_baggage(parsed)
    assert len(encoded.encode()) <= w3c.BAGGAGE_MAX_BYTES
    assert w3c.parse_baggage(encoded) == parsed  # what is sent on reads back the same


@PROPS
@given(st.integers(0, 20_000), st.sampled_from([",", ", ", "bad member,", ";,", "=,"]))
def test_baggage_never_reads_past_its_byte_bound(filler_bytes: int, unit: str) -> None:
    filler = unit * (filler_bytes // len(unit))
    parsed = w3c.parse_baggage(filler + "k=v")
    within = len(filler.encode()) + 3 <= w3c.BAGGAGE_MAX_BYTES
    assert parsed == ({"k": "v"} if within else {})


# -- extract / inject ---------------------------------------------------------------


NAMES = [
    "traceparent",
    "TraceParent",
    "tracestate",
    "TRACESTATE",
    "baggage",
    "x-request-id",
    "x-root-request-id",
]


def hostile(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return mutated(base).map(lambda s: s + MARK) | mutated(base)


w3c_values = hostile(traceparents()) | hostile(tracestates()) | hostile(baggages()) | any_text
# request ids have their own grammar (any token of 1-128 safe characters is a valid
# id and travels on): they get no marker, so a marker found anywhere is a W3C value
id_values = any_text.filter(lambda s: MARK not in s)
w3c_names = st.sampled_from(["traceparent", "TraceParent", "tracestate", "TRACESTATE", "baggage"])
id_names = st.sampled_from(["x-request-id", "x-root-request-id"]) | st.text(max_size=10)


def entries(names: st.SearchStrategy[str], values: st.SearchStrategy[str]) -> Any:
    return st.tuples(names, values | st.lists(values, max_size=3) | st.integers() | st.none())


carriers = st.lists(entries(w3c_names, w3c_values) | entries(id_names, id_values), max_size=8).map(
    dict
)


@contextmanager
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + repr(record.__dict__))

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


@PROPS
@given(carriers)
def test_extract_never_raises_and_inject_sends_only_valid_values(carrier: dict[Any, Any]) -> None:
    propagation.configure(baggage_fields=["tenant", "user_id", "k"])
    with logged() as lines:
        propagated = propagation.extract(carrier)
        hop = propagation.continue_request(propagated)
        out: dict[str, str] = {}
        propagation.inject(out, request=hop)
    if propagated.trace_id is not None:
        assert len(propagated.trace_id) == 32
        assert propagated.parent_span_id is not None
        assert len(propagated.parent_span_id) == 16
    if propagated.tracestate is not None:
        assert ref_tracestate_members(propagated.tracestate)
        assert len(propagated.tracestate) <= w3c.TRACESTATE_MAX_LENGTH
    assert len(propagated.baggage) <= w3c.BAGGAGE_MAX_MEMBERS
    for name, value in out.items():
        assert header_problem(name, value) is None, (name, value)
        assert MARK not in value  # a rejected raw value is never sent on
    assert ref_traceparent(out["traceparent"])
    assert out["traceparent"][36:52] != propagated.parent_span_id  # a parent-id of its own
    if "tracestate" in out:
        assert ref_tracestate_members(out["tracestate"])
    assert not any(MARK in line for line in lines)  # nor logged


# -- cost -------------------------------------------------------------------------------


def _best(job: Callable[[], object], inner: int, rounds: int = 5) -> float:
    # CPU time of this process: load from other processes does not skew the ratio
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(inner):
            job()
        best = min(best, time.process_time() - start)
    return best


def growth_ratio(make: Callable[[int], str], parse: Callable[[str], object], n: int) -> float:
    """Best time on an input of 8n characters over the best on n (same repetitions)."""
    small, large = make(n), make(8 * n)
    inner = 1
    while _best(lambda: parse(small), inner, 1) < 0.005 and inner < 1 << 16:
        inner *= 2
    return _best(lambda: parse(large), inner) / _best(lambda: parse(small), inner)


def assert_linear(make: Callable[[int], str], parse: Callable[[str], object], n: int) -> None:
    # linear is about 8, quadratic about 64; measured up to five times against load bursts
    ratios = []
    for _ in range(5):
        ratios.append(growth_ratio(make, parse, n))
        if ratios[-1] < 20:
            return
    raise AssertionError(f"8x the input took {min(ratios):.1f}x the time")


WORST_CASES: dict[str, tuple[Callable[[int], str], Callable[[str], object]]] = {
    "tracestate empty members": (lambda n: "," * n, w3c.parse_tracestate),
    "tracestate whitespace": (lambda n: "a=" + "!" * 10 + " \t" * (n // 2), w3c.parse_tracestate),
    "tracestate long value": (lambda n: "a=" + " " * n + "b", w3c.parse_tracestate),
    "tracestate members": (
        lambda n: ",".join(f"k{i}=v" for i in range(n // 6)),
        w3c.parse_tracestate,
    ),
    "baggage empty members": (lambda n: "," * n, w3c.parse_baggage),
    "baggage properties": (lambda n: "k=v" + ";" * n, w3c.parse_baggage),
    "baggage percent": (lambda n: "k=" + "%41" * (n // 3), w3c.parse_baggage),
    "baggage members": (lambda n: ",".join(f"k{i}=v" for i in range(n // 6)), w3c.parse_baggage),
    "traceparent": (lambda n: "00-" + "a" * n, w3c.parse_traceparent),
}


@pytest.mark.parametrize("case", sorted(WORST_CASES))
def test_parser_cost_is_linear_in_input_size(case: str) -> None:
    make, parse = WORST_CASES[case]
    assert_linear(make, parse, 1000)


@settings(PROPS, max_examples=3)
@given(st.sampled_from(["tracestate", "baggage", "traceparent"]))
def test_cost_is_bounded_past_the_size_caps(name: str) -> None:
    # past its cap a parser reads a bounded prefix (or nothing): 8x the input, about
    # the same work (a ratio near 1; linear would be 8)
    unit = {"tracestate": "a=1,", "baggage": "k=v,", "traceparent": "00-"}[name]
    valid = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"

    def extract_header(text: str) -> object:
        headers = {name: text} if name == "traceparent" else {name: text, "traceparent": valid}
        return propagation.extract(headers)

    def make(n: int) -> str:
        return unit * n

    ratios = []
    for _ in range(5):
        ratios.append(growth_ratio(make, extract_header, 20_000))
        if ratios[-1] < 4:
            return
    raise AssertionError(f"past the cap, 8x the input took {min(ratios):.1f}x the time")
