"""The async client's transport: httpx's transport API on aiohttp's public ``ClientSession``.

- The request's deadline is aiohttp's ``total`` timeout: it covers connecting, sending and every
  read of the body, so a server that drips its answer still fails on time.
- An answer whose request carries :data:`~rivya_provider.client.transports.READ_CAP` is read
  here, whole and decoded under the cap, into one read ``httpx.Response``; any other answer is
  streamed, and its connection goes back to the pool only once its body was read to the end.
- aiohttp's errors become the httpx errors of the same meaning, as httpx's own transport names
  them, so the client's error types and retries are the same on every transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

from rivya_provider.client.bodies import body_decoder, read_response
from rivya_provider.client.transports import READ_CAP, seconds_left

#: aiohttp's errors, most specific first, and the httpx error each stands for.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    # An answer aiohttp cannot parse (no status line, a broken header): a protocol error.
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    # Read timeouts, and the total timeout (our deadline).
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.NetworkError),
)


#: What aiohttp raises (the httpx errors pass through as they are).
_AIOHTTP_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def _as_httpx(exc: BaseException) -> httpx.TransportError:
    """The httpx error an aiohttp error stands for (raise it ``from`` the original)."""
    mapped = next(target for source, target in _ERRORS if isinstance(exc, source))
    return mapped(f"{type(exc).__name__}: {str(exc) or 'the request deadline passed'}")


class _Body(httpx.AsyncByteStream):
    """A streamed answer's body; its connection is reused only if it was read to the end."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _AIOHTTP_ERRORS as exc:
            raise _as_httpx(exc) from exc

    async def aclose(self) -> None:
        _finish(self._response)


def _finish(response: aiohttp.ClientResponse) -> None:
    """Give the connection back when the body was read to its end, else close it."""
    if response.content.at_eof():
        response.release()
    else:
        response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests with one aiohttp session, made in the event loop of its first request.

    :param pool_size: connections at most; idle ones are kept alive for the next request.
    """

    def __init__(self, *, pool_size: int) -> None:
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.pool_size, keepalive_timeout=5.0),
            # Neither the API nor result hosts need cookies, and the triggers sharing this session
            # must not share any.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        # httpx's timeouts per phase, and the deadline over the whole request (connecting,
        # sending and every read of the body).
        phases = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=seconds_left(request, httpx.ReadTimeout),
            connect=phases.get("pool"),
            sock_connect=phases.get("connect"),
            sock_read=phases.get("read"),
        )
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=_body(request),
                allow_redirects=False,
                compress=None,
                timeout=timeout,
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except _AIOHTTP_ERRORS as exc:
            raise _as_httpx(exc) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        cap = request.extensions.get(READ_CAP)
        if cap is not None:
            return await _read(response, request, extensions, cap)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _body(request: httpx.Request) -> bytes | httpx.AsyncByteStream | None:
    """The request's body as aiohttp takes it: bytes, a stream (a multipart upload), or none.

    A body held in memory goes as bytes, an empty one as no body at all: the GET httpx makes to
    follow a redirect carries the first request's empty stream unread, and sent as a stream it
    went out chunked, which a server that ignores bodies on GET read as its next request.
    """
    try:
        return request.content or None
    except httpx.RequestNotRead:
        pass
    if isinstance(request.stream, httpx.ByteStream):
        return b"".join(request.stream) or None
    request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
    assert isinstance(request.stream, httpx.AsyncByteStream)
    return request.stream


async def _read(
    response: aiohttp.ClientResponse,
    request: httpx.Request,
    extensions: dict[str, Any],
    cap: int,
) -> httpx.Response:
    """The whole answer, decoded under ``cap`` bytes (within the request's total timeout)."""
    try:
        decoder = body_decoder(response.headers, cap)
        chunks = [decoder.feed(chunk) async for chunk in response.content.iter_any()]
    except _AIOHTTP_ERRORS as exc:
        raise _as_httpx(exc) from exc
    finally:
        _finish(response)
    return read_response(
        response.status, response.raw_headers, chunks, request=request, extensions=extensions
    )
