"""The async client's transport: httpx's API on aiohttp's connections.

Thousands of triggers poll through one async client in the triggerer's event loop. Under the
same httpx calls, aiohttp's connections cost about a quarter of the CPU per request of httpx's
own transport (docs/performance.md), so the transport comes from ``httpx-aiohttp``. Two things
it lacks are added here:

- the request's wall-clock deadline (:mod:`rivya_provider.client.bounded`) as aiohttp's total
  timeout, over the wait for the answer and every read of its body, so a server that drips
  bytes still fails on time;
- API answers read here, under the size cap the request carries (:data:`bounded.READ_CAP`):
  one ``httpx.Response`` per answer, where a stream read through httpx's layers and read again
  into a second response cost about a tenth of a status poll's CPU;
- precise errors: ``httpx-aiohttp`` reports a refused connection or a server that hung up as a
  ``ConnectTimeout``, and lets an unparsable answer through as aiohttp's own error; they become
  ``ConnectError`` and ``RemoteProtocolError``, as httpx's own transport names them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp.transport import (
    AiohttpResponseStream,
    AiohttpTransport,
    map_aiohttp_exceptions,
)

from rivya_provider.client import bounded


def _precise(exc: Exception) -> Exception:
    """Name a failure the way httpx's own transport does."""
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's ``total``: our deadline
        return httpx.ReadTimeout("the request's wall-clock deadline passed")
    if isinstance(exc, aiohttp.ClientError):
        # What httpx-aiohttp leaves unmapped: an answer aiohttp cannot parse (no status line,
        # a broken header or chunk) arrives as ClientResponseError. httpx's own transport calls
        # that a RemoteProtocolError, a transport error like any other; raw, it would escape
        # the client's error types and end a trigger's wait on a paid generation.
        return httpx.RemoteProtocolError(str(exc))
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(exc, httpx.ConnectError):
        return httpx.ConnectError(str(exc))
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc))
    return exc


@contextmanager
def _precise_errors() -> Iterator[None]:
    try:
        yield
    except (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        precise = _precise(exc)
        if precise is exc:
            raise
        raise precise from (exc if exc.__cause__ is None else exc.__cause__)


class _PreciseStream(httpx.AsyncByteStream):
    """A response body whose read errors are named as httpx names them."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _precise_errors():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class DeadlineAiohttpTransport(AiohttpTransport):
    """``httpx-aiohttp``'s transport, bounded in total by the request's wall-clock deadline."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # The parent's request, with the deadline as aiohttp's ``total`` timeout: it covers
        # connecting, sending and every read of the body, at no cost per read.
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        with _precise_errors(), map_aiohttp_exceptions():
            total = bounded.seconds_left(request, httpx.ReadTimeout)
            try:
                data: bytes | httpx.AsyncByteStream | None = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)  # aiohttp frames the body
            response = await self.client.request(
                method=request.method,
                url=str(request.url),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    total=total,
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
            extensions = {"http_version": b"HTTP/1.1"}
            if response.reason:
                extensions["reason_phrase"] = response.reason.encode()
            cap = request.extensions.get(bounded.READ_CAP)
            if cap is not None:
                return await _read(response, request, extensions, cap)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_PreciseStream(AiohttpResponseStream(response)),
            request=request,
            extensions=extensions,
        )


async def _read(
    response: aiohttp.ClientResponse,
    request: httpx.Request,
    extensions: dict[str, Any],
    cap: int,
) -> httpx.Response:
    """The whole answer, decoded under ``cap`` bytes (within the request's total timeout)."""
    try:
        decoder = bounded.body_decoder(response.headers, cap)
        chunks = [decoder.feed(chunk) async for chunk in response.content.iter_any()]
    except BaseException:
        response.close()  # a body left unread: its connection cannot carry another request
        raise
    await response.__aexit__(None, None, None)  # as httpx-aiohttp's stream ends an answer
    return bounded.read_response(
        response.status, response.raw_headers, chunks, request=request, extensions=extensions
    )
