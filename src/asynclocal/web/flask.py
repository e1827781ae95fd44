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

import logging
from collections.abc import Callable, Iterable

try:
    from flask import Flask, Response, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.flask needs the 'flask' extra: pip install 'asynclocal[flask]'"
    ) from exc

from .._options import checked_options
from ..logging import AccessLog
from ..request._context import RequestRejected, request_storage
from ..request._factory import OnRequest, RequestContextFactory, build_factory
from ..request._ids import Network, RequestIdPolicy
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
        factory / other options: as for `asynclocal.web.wsgi.RequestContextMiddleware`,
            ``access_log`` (one access line per request) included.

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        ConfigurationError / TypeError: an option is unusable.
    """

    @checked_options
    def __init__(
        self,
        app: Flask | None = None,
        *,
        factory: RequestContextFactory | None = None,
        on_request: OnRequest | None = None,
        continue_trace: bool | None = None,
        policy: RequestIdPolicy | None = None,
        header: str | None = None,
        generator: Callable[[], str] | None = None,
        validator: Callable[[str], bool] | None = None,
        trusted_proxies: Iterable[str | Network] | None = None,
        reject_invalid: bool | None = None,
        reuse_request_id: bool | None = None,
        access_log: bool | str | logging.Logger | AccessLog | None = None,
    ) -> None:
        self.access_log = AccessLog.resolve(access_log)
        self.factory = build_factory(
            factory,
            "RequestContextExtension()",
            on_request=on_request,
            continue_trace=continue_trace,
            policy=policy,
            header=header,
            generator=generator,
            validator=validator,
            trusted_proxies=trusted_proxies,
            reject_invalid=reject_invalid,
            reuse_request_id=reuse_request_id,
        )
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
            app.wsgi_app, factory=self.factory, access_log=self.access_log
        )
        app.before_request(_set_route)
        app.register_error_handler(RequestRejected, _rejected)
        app.extensions["asynclocal"] = self
