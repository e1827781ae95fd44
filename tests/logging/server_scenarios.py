"""Real servers logging through `logging_config(json=True)`, each run as its own process.

``python -m tests.logging.server_scenarios MODE PORT`` serves until terminated and
writes its log (JSON lines) to stderr. MODE: uvicorn, hypercorn, django-asgi
(uvicorn), django-wsgi (waitress). gunicorn imports `wsgi_app` with
``tests/logging/gunicorn_conf.py``. Paths: ``/ok/N``, ``/fail/N`` (an unhandled
exception), and for Django also ``/missing/N`` (a returned 404),
``/forbidden/N`` (a returned 403) and ``/raise404/N`` (``Http404``).
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import random
import sys
from collections.abc import Iterable
from typing import Any

from asynclocal.logging import logging_config

log = logging.getLogger("tests.app")


def _user(n: str) -> None:
    from asynclocal.request import request_storage

    ctx = request_storage.get_store()
    if ctx is not None:
        ctx.user = {"id": f"user-{n}"}


def asgi_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from asynclocal.web.asgi import RequestContextMiddleware

    async def ok(request: Request) -> PlainTextResponse:
        n = request.path_params["n"]
        _user(n)
        await asyncio.sleep(random.random() * 0.02)
        log.info("handling %s", n)
        return PlainTextResponse("ok " * int(n))

    async def fail(request: Request) -> PlainTextResponse:
        n = request.path_params["n"]
        _user(n)
        await asyncio.sleep(random.random() * 0.02)
        raise RuntimeError(f"boom-{n}")

    app = Starlette(routes=[Route("/ok/{n}", ok), Route("/fail/{n}", fail)])
    return RequestContextMiddleware(app, access_log=True)


def _wsgi_routes(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    import time

    kind, _, n = environ["PATH_INFO"].strip("/").partition("/")
    _user(n)
    time.sleep(random.random() * 0.02)
    if kind == "fail":
        raise RuntimeError(f"boom-{n}")
    log.info("handling %s", n)
    body = ("ok " * int(n)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _make_wsgi_app() -> Any:
    from asynclocal.web.wsgi import RequestContextMiddleware

    return RequestContextMiddleware(_wsgi_routes, access_log=True)


wsgi_app = _make_wsgi_app()


def django_app(kind: str) -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="test-only",
        ROOT_URLCONF="tests.logging.server_django_urls",
        MIDDLEWARE=["asynclocal.web.django.RequestContextMiddleware"],
        ASYNCLOCAL_REQUEST_CONTEXT={"access_log": True},
        LOGGING=logging_config(json=True),
    )
    django.setup()
    if kind == "asgi":
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def main(mode: str, port: int) -> None:
    if mode in ("uvicorn", "django-asgi"):
        import uvicorn

        app = asgi_app() if mode == "uvicorn" else django_app("asgi")
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            log_config=logging_config(json=True, server_access_logs=False),
            access_log=False,
            lifespan="off",
        )
    elif mode == "hypercorn":
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        logging.config.dictConfig(logging_config(json=True, server_access_logs=False))
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        asyncio.run(serve(asgi_app(), config))
    elif mode == "django-wsgi":
        import waitress

        app = django_app("wsgi")
        waitress.serve(app, host="127.0.0.1", port=port, threads=8)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
