"""What the vendored piece of httpx (rivya_provider/_vendor/httpx_transport.py) relies on.

It is httpx 0.28.1's transport step over an httpcore pool the sync client builds with a network
backend of its own. These tests pin the public httpcore API it uses and check that it answers
and fails exactly as httpx's own ``HTTPTransport`` does, so an httpx or httpcore release that
changes either shows up here first.
"""

from __future__ import annotations

import http.server
import inspect
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from rivya_provider._vendor import httpx_transport
from rivya_provider._vendor.httpx_transport import PoolTransport
from tests.e2e.airflow_processes import free_port

pytestmark = pytest.mark.no_airflow


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            threading.Event().wait(2)  # longer than the read timeout of the test
        body = b'{"id": "task_1", "status": "queued"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Twice", "a")
        self.send_header("X-Twice", "b")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # The /slow answer finds its client gone (it timed out): expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _both() -> list[httpx.BaseTransport]:
    return [httpx.HTTPTransport(), PoolTransport(httpcore.ConnectionPool())]


def _answer(transport: httpx.BaseTransport, url: str) -> tuple[Any, ...]:
    request = httpx.Request("GET", url)
    with transport:
        response = transport.handle_request(request)
        body = response.read()
        return (
            response.status_code,
            response.headers.get_list("x-twice"),
            response.headers["content-type"],
            body,
            response.extensions["http_version"],
            response.extensions["reason_phrase"],
        )


def test_httpcore_offers_what_the_sync_client_builds_its_pool_from() -> None:
    # Public names, and the pool's network_backend parameter: nothing private is touched.
    parameters = inspect.signature(httpcore.ConnectionPool).parameters
    assert {"ssl_context", "max_connections", "keepalive_expiry", "network_backend"} <= set(
        parameters
    )
    for name in ("SyncBackend", "NetworkBackend", "NetworkStream", "Request", "URL"):
        assert name in httpcore.__all__


def test_every_httpcore_error_maps_to_an_httpx_error_as_httpx_maps_it() -> None:
    for source, target in httpx_transport._EXCEPTIONS.items():
        assert issubclass(source, Exception)
        assert target.__module__.startswith("httpx")
    assert set(httpx_transport._EXCEPTIONS) >= {
        httpcore.ConnectError,
        httpcore.ReadTimeout,
        httpcore.RemoteProtocolError,
        httpcore.PoolTimeout,
    }


def test_it_answers_as_httpx_own_transport_does(server: str) -> None:
    ours, theirs = (_answer(transport, f"{server}/task") for transport in reversed(_both()))
    assert ours == theirs
    assert ours[0] == 200
    assert ours[1] == ["a", "b"]


def test_a_refused_connection_is_a_connect_error_as_in_httpx() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    for transport in _both():
        with transport, pytest.raises(httpx.ConnectError):
            transport.handle_request(httpx.Request("GET", url))


def test_a_slow_answer_is_a_read_timeout_as_in_httpx(server: str) -> None:
    for transport in _both():
        request = httpx.Request("GET", f"{server}/slow", extensions={"timeout": {"read": 0.3}})
        with transport, pytest.raises(httpx.ReadTimeout):
            transport.handle_request(request)


def test_the_vendored_file_keeps_its_licence_beside_it() -> None:
    folder = Path(httpx_transport.__file__).parent
    licence = (folder / "LICENSE-httpx.md").read_text()
    assert "Encode OSS Ltd" in licence
    assert "Redistributions of source code must retain" in licence
    assert "LICENSE-httpx.md" in Path(httpx_transport.__file__).read_text()
