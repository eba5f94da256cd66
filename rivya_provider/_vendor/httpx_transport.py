# Vendored from httpx 0.28.1 (httpx/_transports/default.py): ``map_httpcore_exceptions``,
# ``ResponseStream`` and ``HTTPTransport.handle_request``, unchanged but for names, types and the
# pool being given instead of built. Copyright (c) 2019, Encode OSS Ltd. All rights reserved.
# BSD-3-Clause: see LICENSE-httpx.md beside this file.
"""httpx's transport step over a given ``httpcore.ConnectionPool``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import httpcore
import httpx

_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextlib.contextmanager
def map_httpcore_exceptions() -> Iterator[None]:
    """Raise httpcore's errors as the httpx errors of the same meaning (the most specific)."""
    try:
        yield
    except Exception as exc:
        mapped: type[httpx.HTTPError] | None = None
        for from_exc, to_exc in _EXCEPTIONS.items():
            if not isinstance(exc, from_exc):
                continue
            if mapped is None or issubclass(to_exc, mapped):
                mapped = to_exc
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class ResponseStream(httpx.SyncByteStream):
    """An httpcore body as an httpx stream."""

    def __init__(self, httpcore_stream: Iterable[bytes]) -> None:
        self._httpcore_stream = httpcore_stream

    def __iter__(self) -> Iterator[bytes]:
        with map_httpcore_exceptions():
            yield from self._httpcore_stream

    def close(self) -> None:
        close = getattr(self._httpcore_stream, "close", None)
        if close is not None:
            close()


class PoolTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport``'s request step, over the ``httpcore`` pool given."""

    def __init__(self, pool: httpcore.ConnectionPool) -> None:
        self._pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with map_httpcore_exceptions():
            resp = self._pool.handle_request(req)
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=ResponseStream(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._pool.close()
