"""What happens to every request before an endpoint runs: ids, counters, faults, auth, scopes.

The raw ASGI middleware gives each request its id, counts answers, settles due tasks and can drop
an answer after its headers (the "lost response" fault). The checks are FastAPI dependencies that
run the documented order: latency, disabled API, rate limit, injected 5xx, key, scope.

Downloads from ``/cdn/...`` stand in for a CDN's signed URLs: they are not API calls, so the API's
rate limit and faults never touch them. They have their own faults and counters.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rivya_provider.emulator.backend import Backend, backend_of
from rivya_provider.emulator.errors import ApiError, context_of
from rivya_provider.emulator.records import ApiKey, KeyStatus
from rivya_provider.emulator.state import EmulatorState

OPENAPI_PATH = "/api/v1/openapi.json"
API_PREFIX = "/api/v1"
_DOWNLOAD_PREFIX = "/cdn/"
_UNFINISHED_MESSAGE = "ASGI callable returned without completing response."


class _ExpectedDropFilter(logging.Filter):
    """Hides uvicorn's error line for responses this emulator drops on purpose, and only those."""

    def __init__(self) -> None:
        super().__init__()
        self._expected = 0
        self._lock = threading.Lock()

    def expect(self) -> None:
        with self._lock:
            self._expected += 1

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _UNFINISHED_MESSAGE:
            return True
        with self._lock:
            if self._expected <= 0:
                return True
            self._expected -= 1
            return False


_DROP_FILTER = _ExpectedDropFilter()


def install_drop_log_filter() -> None:
    """Attach the filter to uvicorn's error logger (adding it twice is a no-op)."""
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)


def is_api_path(path: str) -> bool:
    """Tell whether API faults and counters apply to ``path`` (not the spec, not downloads)."""
    return path.startswith(API_PREFIX + "/") and path != OPENAPI_PATH


def is_download_path(path: str) -> bool:
    return path.startswith(_DOWNLOAD_PREFIX)


class RequestMiddleware:
    """Gives each request an id, counts answers and drops the answers endpoints ask to drop."""

    def __init__(self, app: ASGIApp, *, backend: Backend) -> None:
        """Wrap ``app``.

        :param app: the next ASGI app.
        :param backend: where counters and tasks live.
        """
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = context_of(scope)
        api = is_api_path(scope["path"])
        download = is_download_path(scope["path"])
        if api or download:
            # The one settling of this request: status changes due by now, and only those.
            self.backend.state.settle_due()
        dropping = False

        async def send_wrapper(message: Message) -> None:
            nonlocal dropping
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = context.request_id
                if context.drop_response:
                    # Headers (with their Content-Length) go out, the body never does: when the
                    # app returns, uvicorn closes the connection and the client sees a broken
                    # response, like a connection lost mid-answer.
                    dropping = True
                    _DROP_FILTER.expect()
                elif api:
                    self.backend.state.count_response(message["status"])
                elif download:
                    self.backend.state.count_download_response(message["status"])
            elif dropping:
                return
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def public_checks(request: Request) -> None:
    """Count the request and apply the faults; no key needed (a FastAPI dependency)."""
    backend = backend_of(request.app)
    backend.state.count_request(f"{request.method} {_route_template(request)}")
    latency = backend.faults.current.latency_seconds
    if latency > 0:
        await asyncio.sleep(latency)
    faults = backend.faults.current
    if faults.api_disabled:
        raise ApiError(
            status=503,
            code="public_api_disabled",
            message="the Public API is switched off for now; try again later",
            retry_after=faults.retry_after_seconds,
        )
    wait = backend.faults.rate_limit()
    if wait is not None:
        raise ApiError(
            status=429,
            code="rate_limited",
            message=f"too many requests; retry after {wait} s",
            retry_after=wait,
        )
    if backend.faults.server_error():
        raise ApiError(status=500, code="internal_error", message="injected server error")


async def download_checks(request: Request) -> None:
    """Count the download and apply the download faults (a FastAPI dependency)."""
    backend = backend_of(request.app)
    backend.state.count_download(f"{request.method} {_route_template(request)}")
    latency = backend.faults.current.download_latency_seconds
    if latency > 0:
        await asyncio.sleep(latency)
    if backend.faults.download_error():
        backend.state.count("downloads_failed")
        raise ApiError(
            status=503, code="download_failed", message="injected download error; try again"
        )


def require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """Return a dependency that runs :func:`public_checks`, then checks the key and ``scope``."""

    async def dependency(request: Request) -> ApiKey:
        await public_checks(request)
        key = _authenticate(request, backend_of(request.app).state)
        if scope not in key.scopes:
            raise ApiError(
                status=403,
                code="api_scope_denied",
                message=f"this API key lacks the {scope} scope",
            )
        return key

    return dependency


def _authenticate(request: Request, state: EmulatorState) -> ApiKey:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            status=401,
            code="api_key_missing",
            message="send the API key as 'Authorization: Bearer rvya_sk_...'",
        )
    key = state.find_key(token)
    if key is None:
        raise ApiError(status=401, code="api_key_invalid", message="the API key is unknown")
    if key.status is KeyStatus.REVOKED:
        raise ApiError(status=401, code="api_key_revoked", message="the API key was revoked")
    if key.status is KeyStatus.EXPIRED:
        raise ApiError(status=401, code="api_key_expired", message="the API key has expired")
    return key


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path
