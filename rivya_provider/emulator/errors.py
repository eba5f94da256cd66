"""Rivya's error envelope, and the handlers that turn every failure into it.

Every error answer is ``{"error": {"code", "message", "requestId"}}`` and every answer carries
``X-Request-Id``; the id is made once per request by the middleware and kept in the ASGI scope.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError as FastAPIValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_SCOPE_KEY = "rivya_emulator"
_CODES_BY_STATUS = {400: "validation_failed", 404: "not_found", 405: "method_not_allowed"}


@dataclass
class RequestContext:
    """Per-request facts shared by the middleware and the endpoints."""

    request_id: str
    #: Set by an endpoint to drop the connection instead of sending its answer.
    drop_response: bool = False


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def context_of(scope: MutableMapping[str, Any]) -> RequestContext:
    """Return the request's context, creating it when the middleware has not run."""
    context = scope.get(_SCOPE_KEY)
    if not isinstance(context, RequestContext):
        context = RequestContext(new_request_id())
        scope[_SCOPE_KEY] = context
    return context


class ApiError(Exception):
    """An error answer: HTTP status, Rivya ``error.code``, message and optional ``Retry-After``."""

    def __init__(
        self, *, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        """Describe the answer.

        :param status: HTTP status.
        :param code: ``error.code``.
        :param message: ``error.message``; names the field, the value and what is allowed.
        :param retry_after: seconds for the ``Retry-After`` header, if any.
        """
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def validation_failed(message: str) -> ApiError:
    return ApiError(status=400, code="validation_failed", message=message)


def not_found(message: str) -> ApiError:
    return ApiError(status=404, code="not_found", message=message)


def error_response(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build the envelope answer for ``request``.

    :param request: the request being answered (its id goes in the body and header).
    :param status: HTTP status.
    :param code: ``error.code``.
    :param message: ``error.message``.
    :param headers: extra headers such as ``Retry-After``.
    """
    request_id = context_of(request.scope).request_id
    body = {"error": {"code": code, "message": message, "requestId": request_id}}
    return JSONResponse(
        body, status_code=status, headers={**(headers or {}), "X-Request-Id": request_id}
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with the envelope."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(FastAPIValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(
        request, status=exc.status, code=exc.code, message=exc.message, headers=headers
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, f"http_{exc.status_code}")
    if exc.status_code == 404:
        message = f"no such endpoint or resource: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(
        request, status=exc.status_code, code=code, message=message, headers=exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FastAPIValidationError)
    problems = []
    for error in exc.errors():
        # Drop the "body"/"query"/"path" prefix: users know fields by their own names.
        location = [str(part) for part in error.get("loc", ())][1:] or ["body"]
        problems.append(f"{'.'.join(location)}: {error.get('msg', 'is invalid')}")
    return error_response(
        request, status=400, code="validation_failed", message="; ".join(problems)
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request,
        status=500,
        code="internal_error",
        message=f"unexpected emulator error: {type(exc).__name__}",
    )
