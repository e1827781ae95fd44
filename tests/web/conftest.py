"""Fixtures for the web integration tests: log capture and raw HTTP for hostile headers."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from asynclocal import request_id
from tests.web._apps import Captured

HEX32 = re.compile(r"[0-9a-f]{32}")

#: Incoming id values an attacker may send; none may ever be echoed or logged.
HOSTILE_IDS: list[bytes] = [
    b"abc\x00def",
    b"abc\x01def",
    b"caf\xc3\xa9-id",
    b"\xff\xfe\xfd",
    b"a" * 10_240,
    b"a" * 129,
    b"has space",
    b"semi;colon",
    b"<script>alert(1)</script>",
    b"id\r\nSet-Cookie: injected=1",
    b"id\nX-Injected: 1",
    b"",
]


@dataclass
class CapturedLogs:
    """Log records seen by the test handler, each tagged with the request id at creation."""

    records: list[tuple[str | None, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lines_with(self, needle: str) -> list[tuple[str | None, str]]:
        with self.lock:
            return [r for r in self.records if needle in r[1]]

    def text(self) -> str:
        with self.lock:
            return "\n".join(f"{rid} {msg}" for rid, msg in self.records)


class _Capture(logging.Handler):
    def __init__(self, logs: CapturedLogs) -> None:
        super().__init__(logging.DEBUG)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        # request_id() is read in the thread that logged, inside its context.
        rid = getattr(record, "request_id", None) or request_id()
        text = record.getMessage()
        if record.exc_info:
            text += " " + logging.Formatter().formatException(record.exc_info)
        with self.logs.lock:
            self.logs.records.append((rid, text))


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    """Every log record in this test (root logger, DEBUG and up), with its request id."""
    logs = CapturedLogs()
    handler = _Capture(logs)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield logs
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def raw_get(
    base_url: str, path: str, header_lines: list[bytes], timeout: float = 10.0
) -> RawResponse:
    """Send a GET with header lines written byte for byte (no client-side validation)."""
    url = urlsplit(base_url)
    assert url.hostname == "127.0.0.1"
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for line in header_lines:
        request += line + b"\r\n"
    request += b"\r\n"
    with socket.create_connection((url.hostname, url.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    if any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers):
        body = _dechunk(body)
    return RawResponse(status, headers, body)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def assert_not_echoed(
    response: RawResponse, hostile: bytes, logs: CapturedLogs | None = None
) -> None:
    """The hostile value is in no response header, body or log line; no injected header."""
    assert response.header("set-cookie") is None
    assert response.header("x-injected") is None
    ids = response.header_values("x-request-id")
    if response.status < 400 or ids:
        # Our middleware answered: exactly one id, a fresh one.
        assert len(ids) == 1, response.headers
        if b"\n" in hostile:
            # On the wire CR/LF ends the header: the app saw only the text before it
            # (a valid id, kept) plus a separate request header, never echoed.
            first_line = hostile.splitlines()[0].decode("latin-1")
            assert ids[0] in (first_line,) or HEX32.fullmatch(ids[0]), ids[0]
        else:
            assert HEX32.fullmatch(ids[0]), ids[0]
            assert ids[0].encode("latin-1") != hostile
    text = hostile.decode("latin-1")
    if len(hostile) >= 4 and hostile != b"a" * 129:
        if ids:
            # The app answered (a server refusing the request itself, as waitress
            # does for a bare LF, may quote the line in its own 400 page).
            assert hostile not in response.body
            for _, value in response.headers:
                assert text not in value
        if logs is not None:
            assert text not in logs.text()


@pytest.fixture
def logs() -> Iterator[Captured]:
    """Every root-logger line (INFO and up) for one test, each with its request id."""
    handler = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
