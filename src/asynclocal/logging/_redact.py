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
from urllib.parse import quote, unquote

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
# The password of a URL's userinfo: scheme://user:password@host, also
# percent-encoded as access logs and query strings write it
# (http%3A//user%3Apassword%40host, http%3A%2F%2Fuser%3Apassword%40host).
_URL_PASSWORD_RE = re.compile(
    r"(?P<scheme>(?:://|%3[Aa](?://|%2[Ff]%2[Ff]))(?:[^\s:/?#@%]|%(?!3[Aa]|40)[0-9A-Fa-f]{2})*"
    r"(?::|%3[Aa]))(?:[^\s/?#@%]|%(?!40|2[Ff])[0-9A-Fa-f]{2})+(?=@|%40)"
)
# A key and its separator: key=value, key: value, "key": "value", 'key': 'value',
# key%3Dvalue (percent-encoded), and ('key', 'value') / (b'key', b'value') as in
# reprs of header lists. Only the key and the separator are matched: the text
# after a separator is scanned for keys of its own ("Error: password: x").
_KEY_SEP_RE = re.compile(
    r"""(?:(?<![A-Za-z0-9_.\-])|(?<=%[0-9A-Fa-f]{2}))(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)"""
    r"""(?P<sep>\\*["']?[ \t]*(?:[:=]|%3[AaDd])\s*|\\*["'],\s*b?(?=\\*["']))"""
)
# The value of a secret key, unquoted: an auth scheme and its credential
# ("Authorization: Token 9944b..."; Bearer/Basic always, any other scheme word
# when 8+ token68 characters follow), else everything up to a delimiter.
_VALUE_RE = re.compile(
    r"""(?:(?:[Bb]earer|BEARER|[Bb]asic|BASIC)[ \t]+"""
    r"""|[A-Za-z][A-Za-z0-9.+_\-]*[ \t]+(?=[A-Za-z0-9\-._~+/]{8,}=*(?![A-Za-z0-9\-._~+/=])))?"""
    r"""[^\s&;,"'})\]]+"""
)
# A quoted value: up to the closing quote, or to the end of the line when unterminated.
_QUOTED_RE = {
    '"': re.compile(r'"(?:[^"\\\n]|\\.)*"?'),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*'?"),
}
_BRACKETS = {"{": "}", "[": "]", "(": ")"}
_RUN_RE = re.compile(r"\S+")
_ESCAPED_QUOTE_RE = re.compile(r"\\+[\"']")
_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_BRACKET_RE = re.compile(r"[{}\[\]()\n]")

# The fast pre-check: text holding none of these (case-insensitive) cannot hold
# anything the default rules mask, so it is returned untouched. A superset of
# the default secret keys and key pattern, credential schemes, JWTs and URLs.
_DEFAULT_TRIGGERS = (
    "pass",
    "pwd",
    "pin",
    "secret",
    "token",
    "api",
    "auth",
    "cookie",
    "credential",
    "csrf",
    "jwt",
    "private",
    "sess",
    "sid",
    "signature",
    "bearer",
    "basic",
    "eyj",
    "://",
    "%3a",
)
# Every masked form needs one of these (a separator, a credential scheme, a JWT).
_GATES = ("=", ":", ",", "%", "eyJ", "earer", "EARER", "asic", "ASIC")

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
    if text.isprintable() or _CONTROL_RE.search(text) is None:
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
        "_trigger",
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
        self._trigger = _trigger_for(self._keys, key_pattern)

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

    def may_hold_secret(self, text: str) -> bool:
        """False when `text` certainly holds nothing this redactor masks (a fast pre-check).

        True means "look closer", not "holds a secret". Never raises.
        """
        if self._patterns or not self._looks_closer(text):
            return bool(self._patterns) or (self._request_secrets and self._request_secret_in(text))
        return True

    def _looks_closer(self, text: str) -> bool:
        # Cheap: a few substring tests, most lines stop at the first gate check.
        words = self._trigger
        if words is None:
            return True
        if not (  # one expression: cheaper than a loop over _GATES
            "=" in text
            or ":" in text
            or "," in text
            or "%" in text
            or "eyJ" in text
            or "earer" in text
            or "asic" in text
            or "EARER" in text
            or "ASIC" in text
        ):
            return False
        lowered = text.lower()
        for word in words:  # noqa: SIM110 (a plain loop is the cheaper)
            if word in lowered:
                return True
        return False

    def _request_secret_in(self, text: str) -> bool:
        ctx = request_storage.get_store()
        if ctx is None:
            return False
        for secret in (ctx.access_token, ctx.refresh_token):
            if isinstance(secret, str) and len(secret) >= 8 and secret in text:
                return True
        return False

    def redact_text(self, text: str) -> str:
        """`text` with credentials, JWTs, secret ``key=value`` pairs and request tokens masked.

        Linear in the length of `text`; returns `text` itself (the same object)
        when nothing was masked. Never raises on a str.
        """
        if not text:
            return text
        if self._request_secrets and len(text) >= 8:
            ctx = request_storage.get_store()
            if ctx is not None:
                secret = ctx.access_token
                if type(secret) is str and len(secret) >= 8 and secret in text:
                    text = text.replace(secret, self.replacement)
                secret = ctx.refresh_token
                if type(secret) is str and len(secret) >= 8 and secret in text:
                    text = text.replace(secret, self.replacement)
        if self._looks_closer(text):
            text = self._mask_plain(text)
            if "%" in text:
                text = self._mask_encoded(text)
        for pattern in self._patterns:
            text = pattern.sub(self.replacement, text)
        return text

    def _mask_plain(self, text: str) -> str:
        if "=" in text or ":" in text or "," in text or "%3" in text:
            text = self._mask_pairs(text)
        if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text or "eyJ" in text:
            text = _CREDENTIAL_RE.sub(self._credential_repl, text)
        if "://" in text or "%3" in text:
            text = _URL_PASSWORD_RE.sub(self._credential_repl, text)
        return text

    def _mask_encoded(self, text: str) -> str:
        # Percent-encoded text (a query value holding JSON, a header, a URL):
        # each whitespace-free run holding %XX is decoded once, masked, and
        # written back encoded where the original was. Linear: one pass per run.
        out: list[str] = []
        done = 0
        for run in _RUN_RE.finditer(text):
            token = run.group()
            if "%" not in token or _PERCENT_RE.search(token) is None:
                continue
            decoded = unquote(token)
            if decoded == token or not self._looks_closer(decoded):
                continue
            masked = self._mask_plain(decoded)
            if masked == decoded:
                continue
            literal = "".join(sorted({c for c in token if not c.isalnum() and c != "%"}))
            out.append(text[done : run.start()])
            out.append(quote(masked, safe=literal + "[]"))
            done = run.end()
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

    def _mask_pairs(self, text: str) -> str:
        # One left-to-right pass: every "key<sep>" is found; the value of a secret
        # key is masked and skipped, any other scan resumes right after the
        # separator. Each character is looked at a bounded number of times.
        out: list[str] = []
        done = 0  # text[:done] is in `out`
        pos = 0
        search = _KEY_SEP_RE.search
        replacement = self.replacement
        while True:
            match = search(text, pos)
            if match is None:
                break
            pos = match.end()
            if not self.is_secret_key(match.group("key")):
                continue
            if "," in match.group("sep") and not _opens_a_pair(text, match.start()):
                continue  # "a", "b" in a JSON list is no (name, value) pair
            end, masked = _secret_value(text, pos, replacement)
            if masked is not None:
                out.append(text[done:pos])
                out.append(masked)
                done = end
            pos = max(end, pos)
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

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


def _secret_value(text: str, pos: int, replacement: str) -> tuple[int, str | None]:
    """Where the value of a secret key starting at `pos` ends, and its masked form.

    The masked form is None when there is nothing to mask (an empty or already
    masked value, ``{}``, ``[]``, ``""``).
    """
    if pos >= len(text):
        return pos, None
    first = text[pos]
    if text.startswith(replacement, pos):
        return pos + len(replacement), None
    escaped = _ESCAPED_QUOTE_RE.match(text, pos) if first == "\\" else None
    if escaped is not None:
        # An escaped quote, as in JSON inside JSON: \"value\" up to the next \" on the line.
        quote = escaped.group()
        close = text.find(quote, escaped.end())
        line_end = text.find("\n", pos)
        if close < 0 or (0 <= line_end < close):
            close = len(text) if line_end < 0 else line_end
            return close, f"{quote}{replacement}"
        if close == escaped.end():
            return close + len(quote), None
        return close + len(quote), f"{quote}{replacement}{quote}"
    if first in _QUOTED_RE:
        quoted = _QUOTED_RE[first].match(text, pos)
        assert quoted is not None  # the pattern matches the quote itself at least
        end = quoted.end()
        inner = (
            text[pos + 1 : end - 1]
            if end - pos >= 2 and text[end - 1] == first
            else text[pos + 1 : end]
        )
        if not inner or inner == replacement:
            return end, None
        closing = first if text[end - 1] == first and end - pos >= 2 else ""
        return end, f"{first}{replacement}{closing}"
    if first in _BRACKETS:
        end = _bracket_end(text, pos)
        if not text[pos + 1 : end - 1].strip():
            return end, None  # "cookies: {}" stays as it is
        return end, replacement
    value = _VALUE_RE.match(text, pos)
    if value is None:
        return pos, None
    return value.end(), replacement


def _opens_a_pair(text: str, key_start: int) -> bool:
    # ('key', ...), [(b'key', ...)]: the key's quote follows "(" or "[" (maybe "b").
    before = text[max(0, key_start - 3) : key_start].lstrip("\\")
    return before[-1:] in ("'", '"') and (
        before[-2:-1] in ("(", "[") or before[-3:-1] in ("(b", "[b")
    )


def _bracket_end(text: str, pos: int) -> int:
    # The end of the bracketed group at `pos` (nesting counted, quotes ignored),
    # or of the line when it is not closed there.
    depth = 0
    for found in _BRACKET_RE.finditer(text, pos):
        char = found.group()
        if char == "\n":
            return found.start()
        if char in _BRACKETS:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return found.end()
    return len(text)


def _trigger_for(keys: frozenset[str], key_pattern: str | None) -> tuple[str, ...] | None:
    # The pre-check words of a redactor (lower case): None (always look closer)
    # when a custom key pattern may match names no word can foresee.
    if key_pattern is not None and key_pattern != DEFAULT_SECRET_KEY_PATTERN:
        return None
    words = list(_DEFAULT_TRIGGERS)
    for key in sorted(keys):
        if key and not any(word in key for word in _DEFAULT_TRIGGERS):
            # "remember_me" may be written remember-me, Remember.Me...: its first part.
            first = key.strip("_").split("_")[0] or key
            if first not in words:
                words.append(first)
    return tuple(words)


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
