"""Secrets in the forms they reach logs in: one entry per documented form.

Each form is a template with ``{s}`` where the secret goes. The test suite puts
every form into free text, JSON, a traceback's last line and (where it is a
URL) its percent-encoded spelling, and runs it through every output: stdlib
`Formatter`, `JsonFormatter`, structlog and loguru. The secret must never
survive; the surrounding words must.
"""

from __future__ import annotations

from urllib.parse import quote

#: (name, template). Every template holds ``{s}`` exactly once.
FORMS: tuple[tuple[str, str], ...] = (
    ("query-string", "GET /login?user=bob&password={s}&next=/home"),
    ("key-colon", "password: {s}"),
    ("key-after-key", "Error: password: {s}"),
    ("multi-line-config", "Config:\npassword: {s}\nport: 5432"),
    ("token-after-text", "login failed: token: {s}"),
    ("authorization-token-scheme", "Error: Authorization: Token {s}"),
    ("bearer", "calling upstream with Bearer {s}"),
    ("basic", "Authorization: Basic {s}"),
    ("json-object", '{{"user": "bob", "api_key": "{s}"}}'),
    ("json-after-assignment", 'a= "api_key": "{s}"'),
    ("dict-repr", "payload={{'password': '{s}', 'user': 'bob'}}"),
    ("header-list-repr", "headers=[('authorization', 'Bearer {s}'), ('accept', 'json')]"),
    ("bytes-header-list", "scope headers [(b'cookie', b'sessionid={s}')]"),
    ("cookie-header", "Cookie: sessionid={s}; theme=dark"),
    ("set-cookie", "Set-Cookie: session={s}; Path=/; HttpOnly"),
    ("dsn-password", "connecting to postgresql://app:{s}@db:5432/orders"),
    ("percent-encoded-url", "GET /cb?next=http%3A//alice%3A{s}%40host/x HTTP/1.1"),
    ("fully-percent-encoded-url", "redirect=http%3A%2F%2Falice%3A{s}%40host%2Fx"),
    ("percent-encoded-pair", "next=%2Fhome%3Fpassword%3D{s}%26x%3D1"),
    ("form-body", "body grant_type=client_credentials&client_secret={s}"),
    ("api-key-header", "X-Api-Key: {s}"),
    ("env-assignment", "AWS_SECRET_ACCESS_KEY={s}"),
    ("yaml-indented", "db:\n  db_password:   {s}\n  host: db"),
    ("kwargs-repr", "connect(user='bob', password='{s}', port=5432)"),
    ("refresh-grant", "refresh_token={s}&grant_type=refresh_token"),
    ("passphrase-spaced", "passphrase = {s}"),
    ("cookies-dict", "cookies: {{'sid': '{s}'}}"),
    ("json-in-json", '{{"event": "{{\\"api_key\\": \\"{s}\\"}}"}}'),
)

#: Secrets of the shapes that occur (opaque, hex, base64, JWT); all 12+ characters.
SECRETS: tuple[str, ...] = (
    "hunter2secretX9",
    "9944b09199c62bcf9418ad846dd0e4bb",
    "c2VjcmV0OnBhc3N3b3Jk",
    "sk_live_51HqZ2eAbCdEf",
)

#: A JWT is a secret wherever it appears, with or without a key.
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLXZhbHVl"

#: Words next to the secrets that must survive masking.
KEPT = {
    "query-string": "user=bob",
    "multi-line-config": "port: 5432",
    "cookie-header": "theme=dark",
    "json-object": '"user": "bob"',
    "yaml-indented": "host: db",
    "kwargs-repr": "port=5432",
    "header-list-repr": "'accept', 'json'",
}


def url_encoded(text: str) -> str:
    """`text` as a query value writes it (every reserved character percent-encoded)."""
    return quote(text, safe="")


def cases() -> list[tuple[str, str, str]]:
    """(id, text, secret) for every form and secret, plus the JWT forms."""
    out: list[tuple[str, str, str]] = []
    for name, template in FORMS:
        for i, secret in enumerate(SECRETS):
            out.append((f"{name}-{i}", template.format(s=secret), secret))
    out.append(("jwt-bare", f"token was {JWT} (expired)", JWT))
    out.append(("jwt-in-json", f'{{"id_token": "{JWT}"}}', JWT))
    return out
