"""The redaction corpus through every output: stdlib text, JSON, structlog, loguru.

Every documented form is logged as a message, inside a JSON document, as the
last line of a traceback and (percent-encoded, as a query value) inside a URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

from asynclocal.logging import ContextFilter, Formatter, JsonFormatter, default_redactor
from asynclocal.logging.loguru import RequestContextPatcher
from asynclocal.logging.structlog import RequestContextProcessor
from asynclocal.request import RequestContext, request_storage

from .conftest import ListHandler
from .redaction_corpus import FORMS, KEPT, SECRETS, cases, url_encoded

CASES = cases()
IDS = [case[0] for case in CASES]


def _variants(text: str) -> dict[str, str]:
    return {
        "free-text": f"request failed ({text}) after 3 retries",
        "json": json.dumps({"event": "upstream", "detail": text}),
        "url": f"GET /callback?state=x&next={url_encoded(text)} HTTP/1.1",
    }


def test_the_corpus_holds_twenty_documented_forms_and_more() -> None:
    assert len(FORMS) >= 20
    assert all(template.count("{s}") == 1 for _, template in FORMS)


@pytest.mark.parametrize(("name", "text", "secret"), CASES, ids=IDS)
def test_redactor_masks_every_form_in_every_setting(name: str, text: str, secret: str) -> None:
    for where, variant in {"bare": text, **_variants(text)}.items():
        if where == "url" and name.startswith(("percent-", "fully-percent")):
            continue  # already a URL's own spelling; encoding it twice is no real form
        out = default_redactor.redact_text(variant)
        assert secret not in out, (where, out)
        assert "[REDACTED]" in out, (where, out)
    form = name.rsplit("-", 1)[0]
    if form in KEPT:
        assert KEPT[form] in default_redactor.redact_text(text)


def _raise(text: str) -> None:
    raise ValueError(text)


@pytest.fixture
def outputs(make_logger: Callable[..., logging.Logger]) -> tuple[logging.Logger, Any]:
    text = ListHandler(Formatter("%(request_id)s %(levelname)s %(message)s"))
    text.addFilter(ContextFilter())
    as_json = ListHandler(JsonFormatter())
    as_json.addFilter(ContextFilter())
    return make_logger(text, as_json), (text, as_json)


def test_stdlib_text_and_json_outputs_mask_messages_and_traceback_last_lines(
    outputs: tuple[logging.Logger, tuple[ListHandler, ListHandler]],
) -> None:
    log, (text, as_json) = outputs

    def calls() -> None:
        for _, form, _secret in CASES:
            log.info("%s", form)
            log.info(json.dumps({"detail": form}))
            try:
                _raise(form)
            except ValueError:
                log.exception("call failed")

    request_storage.run(RequestContext("r-corpus"), calls)

    assert len(text.lines) == len(as_json.lines) == 3 * len(CASES)
    all_secrets = {secret for _, _, secret in CASES}
    for handler in (text, as_json):
        output = "\n".join(handler.lines)
        leaked = sorted(s for s in all_secrets if s in output)
        assert not leaked, leaked
    for line in as_json.lines[2::3]:
        record = json.loads(line)
        assert record["request_id"] == "r-corpus"
        assert "[REDACTED]" in record["exc_info"].split("ValueError: ", 1)[1]


def test_structlog_output_masks_every_form() -> None:
    lines: list[str] = []

    def sink(_logger: Any, _name: str, event_dict: Any) -> str:
        rendered = json.dumps(event_dict, default=str)
        lines.append(rendered)
        return rendered

    log = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[
            structlog.processors.format_exc_info,
            RequestContextProcessor(),
            sink,
        ],
    )

    def calls() -> None:
        for _, form, _secret in CASES:
            log.info(form, detail=form, nested={"inner": [form]})
            try:
                _raise(form)
            except ValueError:
                log.exception("call failed")

    request_storage.run(RequestContext("r-structlog"), calls)

    output = "\n".join(lines)
    assert not sorted(secret for _, _, secret in CASES if secret in output)
    assert all(json.loads(line)["request_id"] == "r-structlog" for line in lines)


def test_loguru_output_masks_every_form() -> None:
    lines: list[str] = []
    sink_id = loguru_logger.add(
        lambda m: lines.append(str(m)),
        format="{extra[request_id]} {message} {extra[detail]}",
        filter=lambda r: r["extra"].get("corpus") is True,
    )
    log = loguru_logger.bind(corpus=True).patch(RequestContextPatcher())
    try:

        def calls() -> None:
            for _, form, _secret in CASES:
                log.bind(detail=form).info("{}", form)

        request_storage.run(RequestContext("r-loguru"), calls)
    finally:
        loguru_logger.remove(sink_id)

    assert len(lines) == len(CASES)
    output = "\n".join(lines)
    assert not sorted(secret for _, _, secret in CASES if secret in output)
    assert all(line.startswith("r-loguru ") for line in lines)


def test_every_secret_shape_is_used() -> None:
    assert {secret for _, _, secret in CASES} >= set(SECRETS)
