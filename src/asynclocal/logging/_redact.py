"""Secret redaction and control-character escaping shared by every log output.

One `Redactor` decides what a secret is:

* a *key* is secret when its normalised name (lower case, ``-`` and ``.`` as
  ``_``) is in `keys` or matches `key_pattern` (passwords, tokens, API keys,
  ``Authorization``, cookies, session ids...). The value of a secret key is
  replaced whole, whatever its type.
* in *text* (messages, string values, tracebacks) it masks ``Bearer``/``Basic``
  credentials, JWT-looking strings, URL passwords (``scheme://user:[REDACTED]@host``),
  ``key=value`` / ``key: value`` /
  ``"key": "value"``, ``('key', 'value')`` pairs whose key is secret (query
  strings, cookie headers, reprs of dicts and header lists), anything matching
  the extra `patterns`, and the literal `access_token` / `refresh_token` of the
  request being served.

`escape_control()` writes CR, LF and other control characters as visible
escapes (``\\n``, ``\\x1b``, ``\\u2028``) so a hostile value can never start a
forged log line or drive a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from asynclocal.request import request_storage

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_KEY_PATTERN",
    "REDACTED",
    "Redactor",
    "default_redactor",
    "escape_control",
]

REDACTED = "[REDACTED]"

#: Key names (normalised: lower case, ``-``/``.`` -> ``_``) that are always secret.
DEFAULT_SECRET_KEYS: frozenset[str] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "client_secret",
        "cookie",
        "cookies",
        "credentials",
        "csrf",
        "csrf_token",
        "csrftoken",
        "id_token",
        "jwt",
        "pass",
        "passwd",
        "password",
        "pin",
        "private_key",
        "proxy_authorization",
        "pwd",
        "refresh_token",
        "secret",
        "session",
        "sessionid",
        "set_cookie",
        "sid",
        "token",
        "x_api_key",
        "x_auth_token",
        "x_csrf_token",
    }
)

#: Searched in normalised key names: a key containing any of these is secret.
#: Deliberately broad ("token_count" is masked too): over-masking is the safe side.
DEFAULT_SECRET_KEY_PATTERN = (
    r"passw|passphrase|secret|token|api_?key|authori[sz]ation|(?:^|_)auth(?:_|$)|oauth"
    r"|cookie|credential|private_?key|sess(?:ion)?_?id|(?:^|_)session(?:_|$)|signature"
    r"|(?:^|_)jwt(?:_|$)|(?:^|_)sid$"
)

# Bearer/Basic credentials and JWT-looking strings, anywhere in text.
_CREDENTIAL_RE = re.compile(
    r"(?P<scheme>\b(?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+)[A-Za-z0-9\-._~+/]{4,}=*"
    r"|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
)
# The password of a URL's userinfo: scheme://user:password@host.
_URL_PASSWORD_RE = re.compile(r"(?P<scheme>://[^\s:/?#@]*:)[^\s/?#@]+(?=@)")
# key=value, key: value, "key": "value", 'key': 'value' (value up to a delimiter),
# and ('key', 'value') / (b'key', b'value') as in reprs of header lists.
# An unquoted value may start with an auth scheme ("Authorization: Token abc..."):
# Bearer/Basic always, any other scheme word when a credential of 8+ token68
# characters follows, so the credential is masked with it.
_PAIR_RE = re.compile(
    r"""(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<sep>["']?\s*[:=]\s*|["'],\s*b?(?=["']))"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
    r"""|(?:(?:[Bb]earer|[Bb]asic)\s+"""
    r"""|[A-Za-z][A-Za-z0-9.+_\-]*\s+(?=[A-Za-z0-9\-._~+/]{8,}=*(?:[\s&;,})]|$)))?"""
    r"""[^\s&;,"'})?]+)"""
)

_MAX_DEPTH = 8
# The first item of a (name, value) pair, as in header lists.
_PAIR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")

# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators.
_ESCAPES: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in range(0x20)},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    0x7F: "\\x7f",
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """`text` with every control character written as a visible escape (never raw).

    CR and LF become ``\\r`` and ``\\n``, so one log call is always one line;
    ESC becomes ``\\x1b``, so no terminal escape sequence reaches the output.
    """
    if _CONTROL_RE.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def _normalise_key(key: str) -> str:
    return key.strip().strip("\"'").lower().replace("-", "_").replace(".", "_")


class Redactor:
    """Masks secrets in keys, mappings, sequences and free text.

    Args:
        keys: secret key names (compared after normalisation). Default
            `DEFAULT_SECRET_KEYS`.
        key_pattern: a regular expression searched in normalised key names; None
            disables pattern matching. Default `DEFAULT_SECRET_KEY_PATTERN`.
        extra_keys: added to `keys` (the usual way to name your own secrets,
            e.g. a cookie called ``"remember_me"``).
        patterns: extra regular expressions whose matches in text are masked.
        replacement: what a secret becomes. Default ``"[REDACTED]"``.
        request_secrets: also mask the literal `access_token`/`refresh_token` of
            the current request wherever they appear in text (only values of 8
            characters or more, so a short test token cannot mask common words).

    Raises:
        TypeError: an argument has the wrong type (e.g. `keys` given as one str).
        ValueError: `key_pattern` or one of `patterns` is not a valid regular expression.
    """

    __slots__ = (
        "_key_cache",
        "_key_re",
        "_keys",
        "_patterns",
        "_request_secrets",
        "replacement",
    )

    def __init__(
        self,
        *,
        keys: Iterable[str] = DEFAULT_SECRET_KEYS,
        key_pattern: str | None = DEFAULT_SECRET_KEY_PATTERN,
        extra_keys: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        replacement: str = REDACTED,
        request_secrets: bool = True,
    ) -> None:
        names = _str_items("keys", keys) + _str_items("extra_keys", extra_keys)
        self._keys = frozenset(_normalise_key(k) for k in names)
        if key_pattern is not None and not isinstance(key_pattern, str):
            raise TypeError(f"Redactor(key_pattern) must be a str or None, got {key_pattern!r:.60}")
        self._key_re = _compile("key_pattern", key_pattern) if key_pattern else None
        self._key_cache: dict[str, bool] = {}
        if isinstance(patterns, (str, re.Pattern)):
            raise TypeError("Redactor(patterns) must be a list of regular expressions, not one")
        self._patterns = tuple(
            p if isinstance(p, re.Pattern) else _compile("patterns", p) for p in patterns
        )
        if not isinstance(replacement, str):
            raise TypeError(f"Redactor(replacement) must be a str, got {replacement!r:.60}")
        self.replacement = replacement
        self._request_secrets = bool(request_secrets)

    def is_secret_key(self, key: object) -> bool:
        """True when values stored under `key` must never be printed."""
        if not isinstance(key, str):
            return False
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        norm = _normalise_key(key)
        secret = norm in self._keys or (
            self._key_re is not None and self._key_re.search(norm) is not None
        )
        if len(self._key_cache) < 4096:
            self._key_cache[key] = secret
        return secret

    def redact_text(self, text: str) -> str:
        """`text` with credentials, JWTs, secret ``key=value`` pairs and request tokens masked."""
        if not text:
            return text
        if self._request_secrets:
            ctx = request_storage.get_store()
            if ctx is not None:
                for secret in (ctx.access_token, ctx.refresh_token):
                    if isinstance(secret, str) and len(secret) >= 8 and secret in text:
                        text = text.replace(secret, self.replacement)
        if "=" in text or ":" in text or "'," in text or '",' in text:
            text = _PAIR_RE.sub(self._pair_repl, text)
        if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text or "eyJ" in text:
            text = _CREDENTIAL_RE.sub(self._credential_repl, text)
        if "://" in text:
            text = _URL_PASSWORD_RE.sub(self._credential_repl, text)
        for pattern in self._patterns:
            text = pattern.sub(self.replacement, text)
        return text

    def redact_value(self, value: Any, key: object = None, _depth: int = 0) -> Any:
        """`value` with secrets masked; containers are copied, never changed in place.

        A value under a secret `key` is replaced whole; strings go through
        `redact_text`; mappings, lists, tuples and sets are walked (8 levels
        deep, deeper values are replaced); other objects are returned as they are.
        A container that raises while being walked is replaced. Never raises.
        """
        if key is not None and self.is_secret_key(key):
            empty = value is None or (isinstance(value, str) and not value)
            return value if empty else self.replacement
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        if _depth >= _MAX_DEPTH:
            return self.replacement if isinstance(value, (Mapping, list, tuple, set)) else value
        try:
            if isinstance(value, Mapping):
                return {k: self.redact_value(v, k, _depth + 1) for k, v in value.items()}
            if isinstance(value, (list, tuple, set, frozenset)):
                if isinstance(value, (list, tuple)) and len(value) == 2:
                    # A (name, value) pair, as in header lists: [("authorization", "...")].
                    name = value[0]
                    if isinstance(name, bytes):
                        name = name.decode("latin-1")
                    if (
                        isinstance(name, str)
                        and _PAIR_NAME_RE.fullmatch(name)
                        and self.is_secret_key(name)
                        and value[1]
                    ):
                        pair = [value[0], self.replacement]
                        return pair if isinstance(value, list) else tuple(pair)
                items = [self.redact_value(v, None, _depth + 1) for v in value]
                if isinstance(value, list):
                    return items
                if isinstance(value, tuple):
                    return tuple(items)  # a namedtuple becomes a plain tuple
                return frozenset(items) if isinstance(value, frozenset) else set(items)
        except Exception:
            # A container that cannot be walked cannot be shown safely; a log
            # call must never raise because of what it logs.
            return self.replacement
        return value

    def redact_mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        """A copy of `mapping` with secret keys and secrets inside values masked."""
        return {k: self.redact_value(v, k) for k, v in mapping.items()}

    def _credential_repl(self, match: re.Match[str]) -> str:
        scheme = match.group("scheme")
        return f"{scheme}{self.replacement}" if scheme else self.replacement

    def _pair_repl(self, match: re.Match[str]) -> str:
        value = match.group("value")
        if not self.is_secret_key(match.group("key")):
            # "query: access_token=x": the value may hold pairs of its own (one
            # level deep, so the work stays linear in the text).
            if "=" not in value and ":" not in value:
                return match.group(0)
            inner = _PAIR_RE.sub(self._inner_pair_repl, value)
            return f"{match.group('key')}{match.group('sep')}{inner}"
        return self._mask_pair(match, value)

    def _inner_pair_repl(self, match: re.Match[str]) -> str:
        value = match.group("value")
        if not self.is_secret_key(match.group("key")):
            return match.group(0)
        return self._mask_pair(match, value)

    def _mask_pair(self, match: re.Match[str], value: str) -> str:
        quote = value[0] if value[0] in ("'", '"') else ""
        if match.string.startswith(self.replacement, match.start("value") + len(quote)):
            return match.group(0)  # already masked: redaction is idempotent
        return f"{match.group('key')}{match.group('sep')}{quote}{self.replacement}{quote}"


def _str_items(what: str, items: Iterable[str]) -> list[str]:
    if isinstance(items, str):
        raise TypeError(
            f"Redactor({what}) must be a collection of names, not one str: use ({items!r},)"
        )
    out = list(items)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"Redactor({what}) items must be str, got {item!r:.60}")
    return out


def _compile(what: str, pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise TypeError(f"Redactor({what}) must hold str or re.Pattern, got {pattern!r:.60}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(
            f"Redactor({what}): {pattern!r} is not a valid regular expression: {exc}"
        ) from exc


#: The redactor used when none is given.
default_redactor = Redactor()


def resolve_redactor(redact: bool | Redactor) -> Redactor | None:
    """`True` -> the default redactor, `False` -> None, a `Redactor` -> itself."""
    if isinstance(redact, Redactor):
        return redact
    if isinstance(redact, bool):
        return default_redactor if redact else None
    raise TypeError(
        f"redact must be True, False or an asynclocal.logging.Redactor, got {redact!r:.60}"
    )
