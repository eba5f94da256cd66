"""How a :class:`~rivya_provider.client.endpoints.Call` becomes each attempt's ``httpx.Request``.

The same for both clients: headers, the key, the timeouts, the size cap and the deadline of the
answer. No I/O.
"""

from __future__ import annotations

import functools
import re
import time
import uuid

import httpx

from rivya_provider.client import transports
from rivya_provider.client.config import ACCEPT_ENCODING, ClientConfig
from rivya_provider.client.endpoints import Call
from rivya_provider.client.errors import FieldProblem, RequestValidationError
from rivya_provider.client.models import IDEMPOTENCY_KEY_MAX


def client_headers(config: ClientConfig) -> dict[str, str]:
    """The headers every request of a client carries (downloads included; never the key)."""
    return {"User-Agent": config.user_agent, "Accept-Encoding": ACCEPT_ENCODING}


class RequestBuilder:
    """Turns a :class:`Call` into each attempt's ``httpx.Request``.

    The headers with and without the key and the timeouts are made once per client: building a
    poll's request is then a fifth of what merging them at every request costs.
    """

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._anonymous = httpx.Headers({**client_headers(config), "Accept": "application/json"})
        self._authenticated = self._anonymous.copy()
        self._authenticated["Authorization"] = f"Bearer {config.api_key}"
        # What httpx would add to a request without a body: the Host header, first.
        host = httpx.URL(config.base_url).netloc.decode("ascii")
        self._bodiless = {
            authenticated: httpx.Headers([("Host", host), *headers.multi_items()])
            for authenticated, headers in ((True, self._authenticated), (False, self._anonymous))
        }
        self._timeout = config.timeouts.to_httpx().as_dict()
        self._base = config.api_url
        limits, timeouts = config.limits, config.timeouts
        self._seconds = {
            sends: limits.request_seconds(timeouts, sends_body=sends) for sends in (True, False)
        }

    def __call__(self, call: Call) -> httpx.Request:
        extensions = {
            "timeout": self._timeout,
            transports.DEADLINE: time.monotonic() + self._seconds[call.sends_body],
            transports.READ_CAP: self._config.limits.max_response_bytes,
        }
        url = _api_url(f"{self._base}{call.path}")
        if not call.sends_body and not call.headers:
            # Most requests (every poll): the headers made once, an empty body given as such, so
            # httpx neither encodes a body nor merges headers: a sixth of the request's CPU.
            headers = self._bodiless[call.authenticated]
            return httpx.Request(
                call.method, url, headers=headers, stream=_EMPTY, extensions=extensions
            )
        headers = self._authenticated if call.authenticated else self._anonymous
        if call.headers:  # they may add to the client's, never replace the key
            headers = self._anonymous.copy()
            headers.update(call.headers)
            if call.authenticated:
                headers["Authorization"] = self._authenticated["Authorization"]
        return httpx.Request(
            call.method,
            url,
            json=call.json,
            data=call.data,
            files=call.files() if call.files else None,
            headers=headers,
            extensions=extensions,
        )


#: The body of a request that sends none.
_EMPTY = httpx.ByteStream(b"")


# httpx parses and checks every URL string it is given, each character in Python: about a
# tenth of a status poll's CPU. A triggerer polls the same URL of each wait every few seconds, so
# the parsed URLs are kept. 8,192 cover the waits of a triggerer at eight times Airflow's default
# capacity: with more waits than entries, every poll would replace one, and each replaced URL
# lives long enough to reach the garbage collector's oldest generation.
@functools.lru_cache(maxsize=8192)
def _api_url(url: str) -> httpx.URL:
    return httpx.URL(url)


_IDEMPOTENCY_KEY = re.compile(rf"^[\x21-\x7e]{{1,{IDEMPOTENCY_KEY_MAX}}}$")


def idempotency_key(key: str | None) -> str:
    """Check a caller's Idempotency-Key, or make a fresh one for a single create call."""
    if key is None:
        return f"rvy-{uuid.uuid4().hex}"
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.match(key):
        problem = FieldProblem(
            "idempotency_key",
            f"must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters without spaces, "
            f"got {len(key) if isinstance(key, str) else type(key).__name__} characters",
        )
        raise RequestValidationError([problem])
    return key
