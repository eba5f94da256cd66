"""The sync client's transports: no TLS context for http:// servers, a verifying one for https."""

from __future__ import annotations

import ssl

import httpx
import pytest

from rivya_provider.client import RivyaClient, bounded
from tests.e2e.airflow_processes import free_port
from tests.unit.conftest import API_KEY


def _context(transport: httpx.BaseTransport) -> ssl.SSLContext:
    context: ssl.SSLContext = transport._pool._ssl_context  # type: ignore[attr-defined]
    return context


def test_the_plain_http_transport_trusts_no_certificate_so_tls_through_it_fails() -> None:
    context = _context(bounded.sync_transport(tls=False))
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


def test_the_https_transport_is_built_on_its_first_request_with_the_ca_bundle() -> None:
    https = bounded._sync_transports()["mounts"]["https://"]
    assert https._transport is None
    url = f"https://127.0.0.1:{free_port()}/"  # nothing listens there
    with pytest.raises(httpx.ConnectError):
        https.handle_request(httpx.Request("GET", url))
    built = https._transport
    assert built is not None
    context = _context(built)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0
    with pytest.raises(httpx.ConnectError):  # the same transport serves every later request
        https.handle_request(httpx.Request("GET", url))
    assert https._transport is built


@pytest.mark.parametrize(
    ("base_url", "routed_to_https_mount"),
    [("http://127.0.0.1:9", False), ("https://127.0.0.1:9", True)],
)
def test_a_client_routes_only_https_urls_to_the_verifying_transport(
    base_url: str, routed_to_https_mount: bool
) -> None:
    with RivyaClient(api_key=API_KEY, base_url=base_url) as client:
        http = client._http
        transport = http._transport_for_url(httpx.URL(f"{base_url}/api/v1/credits"))
        assert isinstance(transport, bounded._BuiltOnFirstRequest) is routed_to_https_mount
        assert (transport is http._transport) is not routed_to_https_mount
