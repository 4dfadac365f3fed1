"""The request middleware in-process: 504 past the request timeout, with request id and access line."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlfactor.serving.access import RequestMiddleware
from mlfactor.serving.state import ServiceState
from mlfactor.settings import load_settings


async def _slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "0")))
    return Response(b"{}", media_type="application/json")


def test_a_request_past_the_timeout_gets_504(
    store_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A handler slower than MLFACTOR_REQUEST_TIMEOUT is answered 504 with the request id; fast ones pass."""
    settings = load_settings({**store_env, "MLFACTOR_REQUEST_TIMEOUT": "0.2"})
    app = RequestMiddleware(Starlette(routes=[Route("/slow", _slow)]), state=ServiceState(settings=settings))

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            fast = await client.get("/slow?s=0")
            slow = await client.get("/slow?s=2", headers={"X-Request-ID": "late-1"})
            return fast, slow

    with caplog.at_level(logging.INFO, logger="mlfactor.access"):
        fast, slow = asyncio.run(run())
    assert fast.status_code == 200
    assert slow.status_code == 504
    assert slow.json()["error_code"] == "TIMEOUT"
    assert slow.headers["x-request-id"] == "late-1"
    access = [r for r in caplog.records if r.getMessage() == "request"]
    assert [r.fields["status"] for r in access] == [200, 504]  # type: ignore[attr-defined]
