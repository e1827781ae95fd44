"""One logging setup for the app and the servers around it (uvicorn, gunicorn, Celery...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asynclocal.logging._fields import check_fields
from asynclocal.logging._redact import Redactor, resolve_redactor

__all__ = ["DEFAULT_TEXT_FORMAT", "SERVER_ACCESS_LOGGERS", "SERVER_LOGGERS", "logging_config"]

#: The text format `logging_config` uses unless told otherwise.
DEFAULT_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"

#: Loggers of servers and workers that bring handlers of their own; `logging_config`
#: sends their records through the one root handler instead.
SERVER_LOGGERS: tuple[str, ...] = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.asgi",
    "gunicorn",
    "gunicorn.error",
    "hypercorn",
    "hypercorn.error",
    "celery",
    "celery.app.trace",
    "celery.task",
    "celery.worker",
    "celery.redirected",
    "django",
    "django.request",
    "django.server",
    "waitress",
    "aiohttp.server",
    "aiohttp.web",
)

#: The servers' own access loggers (a line per request, without the request's ids).
SERVER_ACCESS_LOGGERS: tuple[str, ...] = (
    "uvicorn.access",
    "gunicorn.access",
    "hypercorn.access",
    "aiohttp.access",
)


def logging_config(
    *,
    json: bool = False,
    level: str | int = "INFO",
    fields: Iterable[str] = (),
    fmt: str | None = None,
    stream: str = "ext://sys.stderr",
    redact: bool | Redactor = True,
    server_access_logs: bool = True,
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: one handler, every line with the request's ids.

    The root logger gets one ``StreamHandler`` (on `stream`) with a
    `ContextFilter` and an `asynclocal.logging.Formatter` (`fmt`, default
    `DEFAULT_TEXT_FORMAT`) or, with `json`, a `JsonFormatter` (needs the
    'json-logging' extra); secrets are masked unless `redact=False`. Every
    logger in `SERVER_LOGGERS` loses the handlers its server gave it and
    propagates to that handler, so uvicorn, gunicorn, hypercorn, Celery,
    Django and waitress write the same format, with the request's ids where a
    request is being served (uvicorn's ANSI ``color_message`` is never
    written). With `server_access_logs=False` the servers' own access loggers
    (`SERVER_ACCESS_LOGGERS`) are silenced: use it with a web integration's
    ``access_log=True``, whose line carries the ids.

    Pass it where each tool takes a logging config: ``uvicorn.run(...,
    log_config=logging_config())``, gunicorn's ``logconfig_dict`` setting,
    ``logging.config.dictConfig(logging_config())`` in Celery's
    ``setup_logging`` signal (with ``worker_hijack_root_logger=False``) or
    Django's ``LOGGING`` (with ``LOGGING_CONFIG = None`` and a ``dictConfig``
    call, or as ``LOGGING`` directly).

    Raises:
        TypeError / ValueError: invalid `fields` or `redact`; TypeError: `fmt`,
            `stream` or `level` of the wrong type.
    """
    names = list(check_fields("logging_config", fields))
    resolve_redactor(redact)  # validates
    if fmt is not None and not isinstance(fmt, str):
        raise TypeError(f"logging_config(fmt) must be a str or None, got {fmt!r:.60}")
    if not isinstance(stream, str):
        raise TypeError(f"logging_config(stream) must be an 'ext://' path, got {stream!r:.60}")
    if not isinstance(level, (str, int)) or isinstance(level, bool):
        raise TypeError(f"logging_config(level) must be a level name or int, got {level!r:.60}")
    formatter: dict[str, Any]
    if json:
        formatter = {"()": "asynclocal.logging.JsonFormatter", "fields": names, "redact": redact}
    else:
        formatter = {
            "()": "asynclocal.logging.Formatter",
            "fmt": fmt or DEFAULT_TEXT_FORMAT,
            "redact": redact,
        }
    loggers: dict[str, Any] = {
        name: {"handlers": [], "propagate": True, "level": "NOTSET"} for name in SERVER_LOGGERS
    }
    for name in SERVER_ACCESS_LOGGERS:
        loggers[name] = (
            {"handlers": [], "propagate": True, "level": "NOTSET"}
            if server_access_logs
            else {"handlers": [], "propagate": False, "level": "CRITICAL"}
        )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "asynclocal": {
                "()": "asynclocal.logging.ContextFilter",
                "fields": names,
                "redact": False,  # the formatter masks, on its own copy
                "escape": False,
            }
        },
        "formatters": {"asynclocal": formatter},
        "handlers": {
            "asynclocal": {
                "class": "logging.StreamHandler",
                "stream": stream,
                "filters": ["asynclocal"],
                "formatter": "asynclocal",
            }
        },
        "loggers": loggers,
        "root": {"level": level, "handlers": ["asynclocal"]},
    }
