"""Result downloads behind a redirect, from a plain keep-alive HTTP/1.1 server.

CDNs answer a result URL with a short redirect to the file, and keep the connection open for the
next one. Both clients reuse their pooled connections across downloads: every request they send
must be one the server can read (a GET with no body), and the bytes of one answer must never be
read as the start of the next.

The server is Python's own ``http.server``: it reads no body on a GET, so anything a client sends
after a GET's headers is read as the next request line, and answered with a 400 page on the
kept-alive connection.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rivya_provider.client import AsyncRivyaClient, RetryPolicy, RivyaClient

pytestmark = pytest.mark.no_airflow

KEY = "rvya_sk_plain_server_downloads_1234"
#: Downloads in a row through one client: enough for pooled connections to be reused often.
DOWNLOADS = 200


def noise_png(seed: int) -> bytes:
    """A real PNG of a few KB whose pixels (so bytes and sha256) differ for every ``seed``."""
    pixels = random.Random(seed).randbytes(40 * 40 * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (40, 40), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


PNGS = [noise_png(n) for n in range(DOWNLOADS)]


@dataclass
class Received:
    """What the server saw: each request's path and body framing, and the lines it could not
    read as a request (which it answered with a 400 page)."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    unreadable: list[bytes] = field(default_factory=list)

    def with_a_body(self) -> list[tuple[str, dict[str, str]]]:
        return [(path, framing) for path, framing in self.requests if framing]


class _CdnServer(ThreadingHTTPServer):
    daemon_threads = True
    received: Received


class _CdnHandler(BaseHTTPRequestHandler):
    """``/r/<n>`` redirects to ``/f/<n>.png``; every answer is framed by Content-Length."""

    protocol_version = "HTTP/1.1"  # keep-alive, as CDNs do
    # Each answer leaves in one write, headers and body together, as a CDN's would: unbuffered,
    # the body would wait out the client's delayed ACK (40 ms an answer, 16 s a test).
    wbufsize = 64 * 1024
    # A connection the client leaves open ends its handler thread after this many idle seconds.
    timeout = 10

    @property
    def received(self) -> Received:
        assert isinstance(self.server, _CdnServer)
        return self.server.received

    def do_GET(self) -> None:
        framing = {
            name: value
            for name in ("Transfer-Encoding", "Content-Length")
            if (value := self.headers.get(name)) is not None
        }
        self.received.requests.append((self.path, framing))
        if found := re.fullmatch(r"/r/(\d+)", self.path):
            body = b"redirecting"  # a small body, framed, on the kept-alive connection
            self._answer(302, body, "text/plain", Location=f"/f/{found[1]}.png")
        elif (found := re.fullmatch(r"/f/(\d+)\.png", self.path)) and int(found[1]) < DOWNLOADS:
            self._answer(200, PNGS[int(found[1])], "image/png")
        else:
            self._answer(404, b"not here", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's answer to a line that is not a request: a 400 page on the connection.
        self.received.unreadable.append(getattr(self, "raw_requestline", b""))
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet: 400 requests per test."""


@dataclass
class Cdn:
    base_url: str
    received: Received


@pytest.fixture
def cdn() -> Iterator[Cdn]:
    """The server on a free port of 127.0.0.1; stops with the test."""
    server = _CdnServer(("127.0.0.1", 0), _CdnHandler)
    server.received = Received()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Cdn(f"http://127.0.0.1:{server.server_address[1]}", server.received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# One attempt per download: a retry would hide a mixed-up connection behind a second request.
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def test_the_sync_client_downloads_every_redirected_result(cdn: Cdn, tmp_path: Path) -> None:
    with RivyaClient(api_key=KEY, base_url=cdn.base_url, retry=ONE_ATTEMPT) as client:
        for n in range(DOWNLOADS):
            target = tmp_path / f"{n}.png"
            done = client.download(f"{cdn.base_url}/r/{n}", target)
            assert done.sha256 == sha256(PNGS[n]), n
            assert target.read_bytes() == PNGS[n], n
    assert cdn.received.with_a_body() == []
    assert cdn.received.unreadable == []


async def test_the_async_client_downloads_every_redirected_result(cdn: Cdn, tmp_path: Path) -> None:
    async with AsyncRivyaClient(api_key=KEY, base_url=cdn.base_url, retry=ONE_ATTEMPT) as client:
        for n in range(DOWNLOADS):
            target = tmp_path / f"{n}.png"
            done = await client.adownload(f"{cdn.base_url}/r/{n}", target)
            assert done.sha256 == sha256(PNGS[n]), n
            assert target.read_bytes() == PNGS[n], n
    # Each request was recorded before its answer was sent, so all are in by now.
    assert cdn.received.with_a_body() == []


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_the_get_that_follows_a_redirect_carries_no_body(
    cdn: Cdn, tmp_path: Path, flavour: str
) -> None:
    # A body on a GET (here an empty chunked one) is what servers like this one read as the
    # next request: the cause of the mixed-up answers above, seen on the server's side.
    url, target = f"{cdn.base_url}/r/7", tmp_path / "7.png"
    if flavour == "sync":
        with RivyaClient(api_key=KEY, base_url=cdn.base_url, retry=ONE_ATTEMPT) as client:
            client.download(url, target)
    else:
        async with AsyncRivyaClient(
            api_key=KEY, base_url=cdn.base_url, retry=ONE_ATTEMPT
        ) as client:
            await client.adownload(url, target)
    assert [path for path, _ in cdn.received.requests] == ["/r/7", "/f/7.png"]
    assert cdn.received.with_a_body() == []
    assert target.read_bytes() == PNGS[7]
