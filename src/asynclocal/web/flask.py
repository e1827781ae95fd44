"""Flask extension: the WSGI middleware, the matched route, and `RequestRejected` responses.

Usage::

    from flask import Flask
    from asynclocal.web.flask import RequestContextExtension

    app = Flask(__name__)
    RequestContextExtension(app, on_request=load_user)
    # or, app factory style:
    ext = RequestContextExtension(on_request=load_user)
    ext.init_app(app)

`init_app` wraps ``app.wsgi_app`` in `asynclocal.web.wsgi.RequestContextMiddleware`
(so Flask's own 500 pages carry the id header), sets ``ctx.route`` to the
matched ``url_rule`` before each view, and answers `RequestRejected` with its
status, public message and headers.
"""

from __future__ import annotations

from typing import Any

try:
    from flask import Flask, Response, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.flask needs the 'flask' extra: pip install 'asynclocal[flask]'"
    ) from exc

from ..request._context import RequestRejected, request_storage
from ..request._scope import RequestContextFactory, factory_or_options
from .wsgi import RequestContextMiddleware

__all__ = ["RequestContextExtension"]


def _set_route() -> None:
    ctx = request_storage.get_store()
    rule = request.url_rule
    if ctx is not None and rule is not None:
        ctx.route = rule.rule


def _rejected(exc: RequestRejected) -> Response:
    return Response(
        exc.public_message, status=exc.status_code, headers=list(exc.headers), mimetype="text/plain"
    )


class RequestContextExtension:
    """Flask extension giving every request its `RequestContext`.

    Args:
        app: initialise this app right away (else call `init_app` later).
        factory / options: as for `asynclocal.web.wsgi.RequestContextMiddleware`.

    Raises:
        TypeError: an option is invalid.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        factory: RequestContextFactory | None = None,
        **options: Any,
    ) -> None:
        self.factory = factory_or_options(factory, options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install the middleware, the route hook and the `RequestRejected` handler on `app`.

        Raises:
            TypeError: `app` is not a Flask application.
            RuntimeError: the extension is already installed on `app`.
        """
        if not isinstance(app, Flask):
            raise TypeError(f"init_app() needs a Flask application, got {type(app).__name__}")
        if "asynclocal" in app.extensions:
            raise RuntimeError("asynclocal's RequestContextExtension is already installed")
        app.wsgi_app = RequestContextMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, factory=self.factory
        )
        app.before_request(_set_route)
        app.register_error_handler(RequestRejected, _rejected)
        app.extensions["asynclocal"] = self
