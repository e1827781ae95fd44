"""Which URLs a propagation target pattern matches."""

from __future__ import annotations

import pytest

from asynclocal import propagation

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("pattern", "url", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:1234/x", True),
        ("*.svc.cluster.local", "http://svc.cluster.local/", False),
        ("*.svc.cluster.local", "http://a.svc.cluster.local.evil.com/", False),
        ("api.internal:8443", "https://api.internal/", False),
        ("api.internal", "http://API.Internal/", True),
        ("api.internal", "http://api.internal@evil.com/", False),
        ("api.internal", "http://evil.com/?api.internal", False),
        ("https://pay.example.com/v1/", "https://pay.example.com/v1/charge", True),
        ("https://pay.example.com/v1/", "http://pay.example.com/v1/charge", False),
        ("https://pay.example.com/v1/", "https://pay.example.com/v1/../admin", False),
        ("https://pay.example.com/v1", "https://pay.example.com/v1", True),
        ("https://pay.example.com/v1", "https://pay.example.com/v1/x", True),
        ("https://pay.example.com/v1", "https://pay.example.com/v1evil", False),
    ],
)
def test_target_patterns(pattern: str, url: str, expected: bool) -> None:
    assert propagation.PropagationTargets([pattern]).matches(url) is expected
