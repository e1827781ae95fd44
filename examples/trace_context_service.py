"""A W3C Trace Context test service built only from asynclocal's documented API.

Starlette + `asynclocal.web.starlette.install` + the httpx integration: the
service the W3C conformance suite (https://github.com/w3c/trace-context,
folder ``test/``) drives. ``POST /test`` takes a JSON list of
``{"url": ..., "arguments": ...}`` and POSTs each ``arguments`` to its ``url``
through an instrumented httpx client, so each call carries the request's
trace context with a ``parent-id`` of its own. Every call is logged at DEBUG
with its ``call_span_id``.

Run it, then the suite (see docs/propagation.md, "Running the W3C test suite")::

    python examples/trace_context_service.py [port] [target ...]

`target`s are the propagation allow-list (default ``127.0.0.1``: the suite's
harness listens there).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asynclocal import propagation
from asynclocal.integrations import httpx as al_httpx
from asynclocal.web.starlette import install


def create_app(targets: Sequence[str] = ("127.0.0.1",)) -> Starlette:
    """The test service: continues the caller's trace, calls each URL it is given."""
    propagation.configure(targets=list(targets))
    propagation.install()  # continue incoming traceparent/tracestate in every request

    async def test(request: Request) -> JSONResponse:
        actions: Any = await request.json()
        if not isinstance(actions, list):
            actions = [actions]
        async with al_httpx.instrument(httpx.AsyncClient(timeout=5)) as client:
            for action in actions:
                if isinstance(action, dict) and isinstance(action.get("url"), str):
                    await client.post(action["url"], json=action.get("arguments") or [])
        return JSONResponse({"calls": len(actions)})

    app = Starlette(routes=[Route("/test", test, methods=["POST"])])
    install(app)
    return app


def main(argv: Sequence[str]) -> None:
    import uvicorn

    port = int(argv[0]) if argv else 5000
    targets = list(argv[1:]) or ["127.0.0.1"]
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    logging.getLogger("asynclocal.propagation").setLevel(logging.DEBUG)
    uvicorn.run(create_app(targets), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
