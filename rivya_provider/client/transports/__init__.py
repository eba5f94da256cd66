"""The clients' transports: httpx's transport API on connections whose time is bounded.

- :mod:`.sync`: httpcore's connection pool with a network backend that bounds every connect,
  read and write by the request's deadline.
- :mod:`.aio`: aiohttp's public ``ClientSession``, its total timeout set to the request's
  deadline; thousands of triggers poll through it in one event loop at a quarter of the CPU of
  httpx's own async transport (docs/performance.md).

Both read two request extensions (httpx's way to tell a transport about one request):
:data:`DEADLINE` and :data:`READ_CAP`.
"""

from __future__ import annotations

import time

import httpx

#: The monotonic time a request's answer must be complete by (:mod:`time.monotonic`).
DEADLINE = "rivya_deadline"
#: Bytes an answer may hold after decompression: a transport that sees it may read the answer
#: whole itself, under the cap, and hand it over read.
READ_CAP = "rivya_read_cap"


def seconds_left(request: httpx.Request, error: type[Exception]) -> float | None:
    """Seconds before a request's deadline (``None``: it has none).

    :raises error: when it has passed.
    """
    deadline = request.extensions.get(DEADLINE)
    if deadline is None:
        return None
    left = float(deadline) - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left


def async_transport(*, pool_size: int) -> httpx.AsyncBaseTransport:
    """The async client's transport: ``pool_size`` connections at most, each kept alive."""
    # Imported here: aiohttp costs a worker's task process import time it never needs.
    from rivya_provider.client.transports.aio import AiohttpTransport

    return AiohttpTransport(pool_size=pool_size)
