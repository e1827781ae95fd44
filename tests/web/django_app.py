"""URLconf and views for the Django tests (ROOT_URLCONF = "tests.web.django_app")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from asynclocal import current_request, request_id
from asynclocal.request import RequestContext, RequestRejected

log = logging.getLogger("tests.web.django")


class Teapot(RequestRejected):
    status_code = 418
    public_message = "teapot"


def load_user(ctx: RequestContext) -> None:
    token = ctx.cookies.get("access_token")
    if token:
        ctx.access_token = token
        ctx.user = {"id": "dj-" + token}


def sync_view(request: HttpRequest, name: str) -> HttpResponse:
    ctx = current_request()
    log.info("django sync %s", name)
    ctx.add_response_header("X-View", "sync")
    return JsonResponse(
        {"request_id": ctx.request_id, "route": ctx.route, "path": ctx.path, "user": ctx.user_id}
    )


async def async_view(request: HttpRequest, name: str) -> HttpResponse:
    ctx = current_request()
    await asyncio.sleep(0.001)
    log.info("django async %s", name)
    return JsonResponse({"request_id": ctx.request_id, "route": ctx.route, "user": ctx.user_id})


def boom(request: HttpRequest) -> HttpResponse:
    log.info("django failing")
    raise RuntimeError("django detail")


def teapot(request: HttpRequest) -> HttpResponse:
    raise Teapot()


def sync_stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        for i in range(3):
            yield f"{i}:{request_id()}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[str]:
        for i in range(3):
            await asyncio.sleep(0.001)
            yield f"{i}:{request_id()}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [
    path("sync/<str:name>", sync_view),
    path("async/<str:name>", async_view),
    path("boom", boom),
    path("teapot", teapot),
    path("stream", sync_stream),
    path("astream", async_stream),
]
