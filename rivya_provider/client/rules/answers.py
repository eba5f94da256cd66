"""How an answer is read: a 2xx body into its model, anything else into the typed error.

Errors are keyed by Rivya's ``error.code`` (never the HTTP status alone) and carry the
``requestId``. No I/O.
"""

from __future__ import annotations

import email.utils
import time
from datetime import timezone
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from rivya_provider.client import safety
from rivya_provider.client.bodies import body
from rivya_provider.client.errors import (
    RivyaAPIError,
    RivyaError,
    RivyaTransportError,
    UnexpectedResponseError,
    error_class_for,
)
from rivya_provider.client.models import ErrorEnvelope

ModelT = TypeVar("ModelT", bound=BaseModel)


def transport_error(label: str, exc: httpx.RequestError) -> RivyaError:
    """Wrap an httpx failure of the request ``label`` names (redacted); only transport failures
    are worth a retry."""
    text = f"{label}: {type(exc).__name__}: {safety.redact(str(exc))[:300]}"
    if isinstance(exc, httpx.TransportError):
        return RivyaTransportError(text)
    return UnexpectedResponseError(text)


def checked(response: httpx.Response) -> httpx.Response:
    """Return a 2xx response or raise the typed error its envelope names."""
    if response.is_success:
        return response
    raise api_error(response)


def api_error(response: httpx.Response) -> RivyaAPIError:
    """Map a non-2xx response to the exception of its ``error.code``."""
    code, message, request_id = f"http_{response.status_code}", "", None
    try:
        error = ErrorEnvelope.model_validate_json(body(response)).error
        code, message, request_id = error.code or code, error.message, error.request_id
    except ValidationError:
        text = body(response)[:1200].decode("utf-8", "replace")
        message = text[:300].strip() or response.reason_phrase
    request_id = request_id or response.headers.get("x-request-id")
    cls = error_class_for(code, response.status_code)
    return cls(
        status_code=response.status_code,
        code=code,
        message=message,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse(model: type[ModelT], response: httpx.Response) -> ModelT:
    """Read a 2xx body into ``model``, ignoring fields Rivya added later."""
    try:
        return model.model_validate_json(body(response))
    except ValidationError as exc:
        if _has_error_envelope(response):
            raise api_error(response) from None
        raise UnexpectedResponseError(
            f"{response.request.method} {response.request.url.path} answered "
            f"HTTP {response.status_code} with a body that is not a {model.__name__}: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
        ) from exc


def _has_error_envelope(response: httpx.Response) -> bool:
    """Tell whether a 2xx body is in fact Rivya's error envelope (keep its code and message)."""
    try:
        return ErrorEnvelope.model_validate_json(body(response)).error.code is not None
    except ValidationError:
        return False


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read ``Retry-After`` as seconds (a number or an HTTP date); ``None`` when absent/garbled."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is garbled
    when = http_date(value)
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when - current)


def http_date(value: str | None) -> float | None:
    """Read an HTTP date (``Date``, ``Retry-After``) as Unix time; ``None`` when garbled."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
