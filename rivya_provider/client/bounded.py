"""Bounds on what a server can make the client spend: bytes read and wall-clock time.

- API answers are read raw and decompressed here, under a size cap that counts decompressed
  bytes, so neither a huge body nor a compression bomb can exhaust memory.
- Every request runs under a wall-clock deadline enforced at each socket operation: a server
  that drips one byte per second fails the request on time instead of resetting the per-read
  timeout forever.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpcore
import httpx

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
else:
    # Not asyncio.wait_for: on Python 3.10 it drops a cancellation that arrives in the same loop
    # turn as the poll's answer (CPython gh-86296), and a cancelled trigger polled on to its end.
    from async_timeout import timeout as _timeout

from rivya_provider.client.errors import (
    FieldProblem,
    RequestValidationError,
    ResponseTooLargeError,
    RivyaTransportError,
    UnexpectedResponseError,
)
from rivya_provider.client.safety import UrlPolicy

_T = TypeVar("_T")

#: Encodings we ask for and can decode under the cap.
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class Limits:
    """Caps on one client's requests.

    :param max_response_bytes: largest API answer, counted after decompression.
    :param request_deadline: seconds one API request may take in total, answer included.
    :param download_deadline: seconds one result download (each redirect hop) may take.
    :param max_redirects: redirects a download may follow.
    """

    max_response_bytes: int = 4 * 1024 * 1024
    request_deadline: float = 120.0
    download_deadline: float = 600.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        problems = [
            FieldProblem(name, f"must be a positive number, got {getattr(self, name)!r}")
            for name in ("max_response_bytes", "request_deadline", "download_deadline")
            if not _positive(getattr(self, name))
        ]
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            problems.append(FieldProblem("max_redirects", "must be a whole number >= 0"))
        if problems:
            raise RequestValidationError(problems, subject="client limits")


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


# ---------------------------------------------------------------------------------------------
# Wall-clock deadlines. The sync client's are checked at every connect, read and write of the
# socket; the async client's become aiohttp's total timeout (aio_transport).

#: The deadline of the sync client's request in progress in this thread.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rivya_deadline", default=None
)


@contextmanager
def deadline_scope() -> Iterator[None]:
    """Keep the deadlines of the sync requests made in this block to this block.

    A request's hook sets its deadline in the caller's context (the transport reads it there);
    without a scope the last one would outlive its request in that thread, and bound whatever
    read it next.
    """
    token = _DEADLINE.set(None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _budget(timeout: float | None, error: type[Exception]) -> float | None:
    return _within(_DEADLINE.get(), timeout, error)


def _within(deadline: float | None, timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left before ``deadline`` (monotonic time, or ``None``)."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's wall-clock deadline passed")
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
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout, httpcore.ConnectTimeout)
        inner = self._inner.connect_tcp(host, port, budget, local_address, socket_options)
        return _Stream(inner)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def sync_transport(*, tls: bool = True) -> httpx.HTTPTransport:
    """An ``httpx`` transport whose sockets honour the current request's deadline.

    :param tls: ``False`` for plain ``http://`` URLs only: its TLS context trusts no
        certificate, so it costs nothing to build (loading the CA bundle takes about 35 ms of
        CPU) and would fail any TLS handshake instead of skipping verification.
    """
    verify: ssl.SSLContext | bool = True if tls else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    transport = httpx.HTTPTransport(verify=verify)
    pool = transport._pool  # httpx has no public way to set the network backend
    pool._network_backend = _Backend(pool._network_backend)
    return transport


class _BuiltOnFirstRequest(httpx.BaseTransport):
    """A transport built when its first request comes, then used for every later one."""

    def __init__(self, build: Callable[[], httpx.BaseTransport]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._transport: httpx.BaseTransport | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._transport
        if transport is None:  # the lock only until it is built, not on every request
            with self._lock:
                if self._transport is None:
                    self._transport = self._build()
                transport = self._transport
        return transport.handle_request(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _sync_transports() -> dict[str, Any]:
    """The sync client's transports: ``https://`` URLs get theirs on first use.

    A worker task against an ``http://`` base URL (the emulator) never builds a TLS context:
    about 35 ms of CPU per task process, most of what the operator spends outside Airflow.
    """
    return {
        "transport": sync_transport(tls=False),
        "mounts": {"https://": _BuiltOnFirstRequest(sync_transport)},
    }


def async_transport(*, pool_size: int | None = None) -> httpx.AsyncBaseTransport:
    """The async transport: aiohttp's connections under httpx's API, bounded by the deadline.

    ``pool_size`` connections at most, every idle one kept alive for the next poll.
    """
    from rivya_provider.client.aio_transport import DeadlineAiohttpTransport

    if not pool_size:
        return DeadlineAiohttpTransport()
    return DeadlineAiohttpTransport(
        limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    )


#: A request's extension (httpx's way to tell a transport about one request) in the async
#: client: the monotonic time its wall-clock deadline passes. Not a context variable, as in the
#: sync client: setting one at every poll gave each waiting trigger's task a new context map
#: that outlived the poll, and thousands of those reach the collector's oldest generation.
DEADLINE = "rivya_deadline"


def seconds_left(request: httpx.Request, error: type[Exception]) -> float | None:
    """Seconds before an async request's wall-clock deadline (``None``: no deadline).

    :raises error: when it has passed.
    """
    return _within(request.extensions.get(DEADLINE), None, error)


def _deadline_of(request: httpx.Request, *, api_prefix: str, limits: Limits) -> float:
    """The monotonic time a request's deadline passes (an API call's, or a download hop's)."""
    api = str(request.url).startswith(api_prefix)
    return time.monotonic() + (limits.request_deadline if api else limits.download_deadline)


def client_options(
    *,
    api_prefix: str,
    limits: Limits,
    policy: UrlPolicy,
    asynchronous: bool,
    pool_size: int | None = None,
) -> dict[str, Any]:
    """``httpx`` client options that apply the URL policy and deadlines to every request.

    Every request (the first and each redirect hop) passes the URL policy and starts its
    wall-clock deadline; the transport enforces that deadline at each socket operation.
    """

    def start(request: httpx.Request) -> None:
        policy.check(str(request.url), what="URL")
        _DEADLINE.set(_deadline_of(request, api_prefix=api_prefix, limits=limits))

    async def astart(request: httpx.Request) -> None:
        # The check may resolve a host name: off the event loop. Each redirect hop comes here
        # again, and starts a deadline of its own.
        if not policy.is_own(str(request.url)):
            await anyio.to_thread.run_sync(lambda: policy.check(str(request.url), what="URL"))
        request.extensions[DEADLINE] = _deadline_of(request, api_prefix=api_prefix, limits=limits)

    hook: Callable[[httpx.Request], Any] = astart if asynchronous else start
    transports = (
        {"transport": async_transport(pool_size=pool_size)} if asynchronous else _sync_transports()
    )
    return {"event_hooks": {"request": [hook]}, "max_redirects": limits.max_redirects, **transports}


# ---------------------------------------------------------------------------------------------
# Size-capped reading of API answers.


#: A request's extension (httpx's way to tell a transport about one request): the transport may
#: read the answer itself, decoded under this many bytes, and hand it over read.
READ_CAP = "rivya_read_cap"


class _Decoder:
    """Decompress gzip/deflate under a cap on the decompressed size."""

    def __init__(self, encoding: str, cap: int) -> None:
        self._cap = cap
        self._size = 0
        self._zlib: Any = None
        name = encoding.strip().lower()
        if name in {"gzip", "x-gzip", "deflate"}:
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)
            self._raw_deflate = name == "deflate"
        elif name not in {"", "identity"}:
            raise UnexpectedResponseError(f"the answer uses an unsupported encoding {name!r}")

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            self._grow(len(data))
            return data
        out = bytearray()
        try:
            while data:
                out += self._zlib.decompress(data, self._cap - self._size - len(out) + 1)
                if self._size + len(out) > self._cap:
                    self._grow(len(out))
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            if self._raw_deflate and self._size == 0 and not out:
                self._zlib, self._raw_deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                return self.feed(data)
            raise UnexpectedResponseError(f"the answer's compression is broken: {exc}") from None
        self._grow(len(out))
        return bytes(out)

    def _grow(self, count: int) -> None:
        self._size += count
        if self._size > self._cap:
            raise ResponseTooLargeError(f"the answer exceeds the cap of {self._cap} bytes")


def body_decoder(headers: Mapping[str, str], cap: int) -> _Decoder:
    """The decoder of an answer with these headers (httpx's or aiohttp's), under ``cap`` bytes.

    :raises ResponseTooLargeError: when the answer announces more than ``cap`` bytes.
    :raises UnexpectedResponseError: for an encoding it cannot decode.
    """
    declared = headers.get("content-length", "")
    encoding = headers.get("content-encoding", "")
    if declared.isdigit() and int(declared) > cap and encoding in {"", "identity"}:
        raise ResponseTooLargeError(f"the answer announces {declared} bytes; the cap is {cap}")
    return _Decoder(encoding, cap)


#: Headers that describe the body as sent, not as decoded.
_BODY = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


def read_response(
    status: int,
    raw_headers: Iterable[tuple[bytes, bytes]],
    chunks: Iterable[bytes],
    *,
    request: httpx.Request,
    extensions: dict[str, Any],
) -> httpx.Response:
    """An answer whose body ``chunks`` were decoded by :func:`body_decoder`, as a read response."""
    # Raw bytes: no decoding of every header into str and back.
    headers = [(key, value) for key, value in raw_headers if key.lower() not in _BODY]
    return httpx.Response(
        status, headers=headers, content=b"".join(chunks), request=request, extensions=extensions
    )


def _complete(response: httpx.Response, chunks: Iterable[bytes]) -> httpx.Response:
    return read_response(
        response.status_code,
        response.headers.raw,
        chunks,
        request=response.request,
        extensions=response.extensions,
    )


def _already_read(response: httpx.Response, cap: int) -> bool:
    """Tell whether a transport handed over a body already in memory (mock transports)."""
    try:
        size = len(response.content)
    except httpx.ResponseNotRead:
        return False
    if size > cap:
        raise ResponseTooLargeError(f"the answer exceeds the cap of {cap} bytes")
    return True


def read_capped(response: httpx.Response, cap: int) -> httpx.Response:
    """Read a streamed answer into a plain response, failing past ``cap`` decompressed bytes."""
    if _already_read(response, cap):
        return response
    try:
        decoder = body_decoder(response.headers, cap)
        chunks = [decoder.feed(raw) for raw in response.iter_raw()]
        return _complete(response, chunks)
    finally:
        response.close()


async def aread_capped(response: httpx.Response, cap: int) -> httpx.Response:
    """The async twin of :func:`read_capped`."""
    if _already_read(response, cap):
        return response
    try:
        decoder = body_decoder(response.headers, cap)
        chunks = [decoder.feed(raw) async for raw in response.aiter_raw()]
        return _complete(response, chunks)
    finally:
        await response.aclose()


# ---------------------------------------------------------------------------------------------
# The triggerer's own clock around each poll.

#: Seconds a poll may take once the deadline has passed: enough for one answer, no more.
LATE_POLL_SECONDS = 10.0
#: A bound further off than this many seconds is watched by its event loop's one sweep (see
#: :class:`_FarBounds`) instead of a timer of its own.
FAR_SECONDS = 60.0
#: Seconds between two sweeps: how late, at most, a far bound cuts its poll.
SWEEP_SECONDS = 1.0


class _FarBounds:
    """The polls in progress on one event loop whose bound is far off, with that bound.

    A timer of each poll's own would stay in the loop's schedule, cancelled, until its far-off
    time or a clean-up: with thousands of waits, thousands of timers and their contexts, which
    the garbage collector moves into its oldest generation and walks at every full pass (and
    which made those passes come more often). Here one timer a second cuts the polls past
    their bound, while any are in progress.
    """

    def __init__(self) -> None:
        self._bounds: dict[Any, float] = {}  # asyncio.Timeout -> the loop's time it must end
        self._sweep_timer: asyncio.TimerHandle | None = None

    def add(self, timeout: Any, when: float) -> None:
        """Watch ``timeout``, entered by a poll that must end by the loop's time ``when``."""
        self._bounds[timeout] = when
        if self._sweep_timer is None:
            self._sweep_timer = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    def discard(self, timeout: Any) -> None:
        self._bounds.pop(timeout, None)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        try:
            for timeout in [t for t, when in self._bounds.items() if when <= now]:
                del self._bounds[timeout]
                timeout.reschedule(now)  # asyncio cancels its poll, and raises TimeoutError there
        finally:  # whatever happened, the other polls stay watched
            self._sweep_timer = (
                loop.call_later(SWEEP_SECONDS, self._sweep) if self._bounds else None
            )


#: One per event loop, and gone with it.
_far_bounds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _FarBounds] = (
    weakref.WeakKeyDictionary()
)


async def before(deadline: float, awaitable: Awaitable[_T], *, what: str) -> _T:
    """Await ``awaitable`` until Unix time ``deadline`` (at least :data:`LATE_POLL_SECONDS`).

    A bound more than :data:`FAR_SECONDS` off may cut the poll up to :data:`SWEEP_SECONDS` late.

    :raises RivyaTransportError: when it takes longer (retryable, like any timeout).
    """
    seconds = max(deadline - time.time(), LATE_POLL_SECONDS)
    try:
        # async_timeout (Python 3.10) cannot be expired from the sweep, a loop callback: a timer
        # of its own there.
        if seconds <= FAR_SECONDS or sys.version_info < (3, 11):
            # Unlike wait_for on 3.11, no task of its own per poll: a third of the cost.
            async with _timeout(seconds):
                return await awaitable
        loop = asyncio.get_running_loop()
        far = _far_bounds.get(loop)
        if far is None:
            far = _far_bounds[loop] = _FarBounds()
        async with _timeout(None) as timeout:  # no timer: the sweep expires it
            far.add(timeout, loop.time() + seconds)
            try:
                return await awaitable
            finally:
                far.discard(timeout)
    except asyncio.TimeoutError:  # not the built-in TimeoutError before Python 3.11
        raise RivyaTransportError(f"{what} did not answer within {seconds:.1f}s") from None


def capped_retry_after(error: BaseException, cap: float) -> float:
    """The server's ``Retry-After`` in seconds, capped as the client caps it (0 when absent)."""
    wait = getattr(error, "retry_after", None)
    return min(float(wait), cap) if isinstance(wait, int | float) else 0.0
