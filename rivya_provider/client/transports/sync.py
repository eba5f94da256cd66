"""The sync client's transports: every socket operation bounded by the request's deadline.

httpcore's per-operation timeouts let a server that drips one byte a second hold a request for
ever; here each connect, read and write waits at most what is left before the request's
:data:`~rivya_provider.client.transports.DEADLINE`. The deadline is known to the socket layer
only while the transport works on its request (sending it, or reading its body).
"""

from __future__ import annotations

import contextvars
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from rivya_provider._vendor.httpx_transport import PoolTransport
from rivya_provider.client.transports import DEADLINE

#: The deadline (monotonic time) of the request whose socket work is under way in this context.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rivya_deadline", default=None
)


@contextmanager
def _deadline(request: httpx.Request) -> Iterator[None]:
    token = _DEADLINE.set(request.extensions.get(DEADLINE))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _budget(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left before the current request's deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's own sync backend, each operation bounded by the request's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, budget, local_address, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _BoundedBody(httpx.SyncByteStream):
    """A response body read under its request's deadline."""

    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            with _deadline(self._request):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineTransport(httpx.BaseTransport):
    """httpx's transport step on a pool whose sockets honour each request's deadline.

    :param tls: ``False`` for plain ``http://`` URLs only: its TLS context trusts no
        certificate, so it costs nothing to build (loading the CA bundle takes about 35 ms of
        CPU) and would fail any TLS handshake instead of skipping verification.
    """

    def __init__(self, *, tls: bool = True) -> None:
        self.ssl_context = (
            httpx.create_ssl_context() if tls else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        )
        self._inner = PoolTransport(
            httpcore.ConnectionPool(
                ssl_context=self.ssl_context,
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=5.0,
                network_backend=_Backend(),
            )
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _deadline(request):
            response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _BoundedBody(response.stream, request)
        return response

    def close(self) -> None:
        self._inner.close()


class _BuiltOnFirstRequest(httpx.BaseTransport):
    """A transport built when its first request comes, then used for every later one."""

    def __init__(self, build: Callable[[], httpx.BaseTransport]) -> None:
        self._build = build
        self._lock = threading.Lock()
        #: The transport, once a request came.
        self.built: httpx.BaseTransport | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.built
        if transport is None:  # the lock only until it is built, not on every request
            with self._lock:
                if self.built is None:
                    self.built = self._build()
                transport = self.built
        return transport.handle_request(request)

    def close(self) -> None:
        if self.built is not None:
            self.built.close()


class SyncTransports:
    """The sync client's transports: one for ``http://``, one for ``https://`` URLs.

    The ``https://`` one is built on its first request: a worker task against an ``http://``
    base URL (the emulator) never loads the CA bundle, about 35 ms of CPU per task process.

    :param given: one transport for every URL instead (tests' mock transports).
    """

    def __init__(self, given: httpx.BaseTransport | None = None) -> None:
        self.http: httpx.BaseTransport = given or DeadlineTransport(tls=False)
        self.https: httpx.BaseTransport = given or _BuiltOnFirstRequest(DeadlineTransport)

    def for_url(self, url: str) -> httpx.BaseTransport:
        return self.https if url.startswith("https://") else self.http

    def client_options(self) -> dict[str, Any]:
        """``httpx.Client`` options that send every request through these transports."""
        return {"transport": self.http, "mounts": {"https://": self.https}}
