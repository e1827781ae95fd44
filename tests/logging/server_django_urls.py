"""Views for the Django server-log scenarios (ROOT_URLCONF of tests.logging.server_scenarios)."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotFound,
)
from django.urls import path

from asynclocal.request import request_storage

log = logging.getLogger("tests.app")


def _user(n: str) -> None:
    ctx = request_storage.get_store()
    if ctx is not None:
        ctx.user = {"id": f"user-{n}"}


def ok(request: HttpRequest, n: str) -> HttpResponse:
    _user(n)
    log.info("handling %s", n)
    return HttpResponse("ok " * int(n))


def missing(request: HttpRequest, n: str) -> HttpResponse:
    _user(n)
    return HttpResponseNotFound("no")


def forbidden(request: HttpRequest, n: str) -> HttpResponse:
    _user(n)
    return HttpResponseForbidden("no")


def raise404(request: HttpRequest, n: str) -> HttpResponse:
    _user(n)
    raise Http404("nothing here")


def deny(request: HttpRequest, n: str) -> HttpResponse:
    _user(n)
    raise PermissionDenied


def fail(request: HttpRequest, n: str) -> HttpResponse:
    _user(n)
    raise RuntimeError(f"boom-{n}")


urlpatterns = [
    path("ok/<str:n>", ok),
    path("missing/<str:n>", missing),
    path("forbidden/<str:n>", forbidden),
    path("raise404/<str:n>", raise404),
    path("deny/<str:n>", deny),
    path("fail/<str:n>", fail),
]
