"""The sync client's transports: no TLS context for http:// servers, a verifying one for https."""

from __future__ import annotations

import httpx
import pytest

from rivya_provider.client.transports.sync import DeadlineTransport, SyncTransports
from tests.e2e.airflow_processes import free_port

pytestmark = pytest.mark.no_airflow


def test_the_plain_http_transport_trusts_no_certificate_so_tls_through_it_fails() -> None:
    context = DeadlineTransport(tls=False).ssl_context
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


def test_the_https_transport_is_built_on_its_first_request_with_the_ca_bundle() -> None:
    https = SyncTransports().https
    assert https.built is None  # type: ignore[attr-defined]
    url = f"https://127.0.0.1:{free_port()}/"  # nothing listens there
    with pytest.raises(httpx.ConnectError):
        https.handle_request(httpx.Request("GET", url))
    built = https.built  # type: ignore[attr-defined]
    assert isinstance(built, DeadlineTransport)
    assert built.ssl_context.check_hostname
    assert built.ssl_context.cert_store_stats()["x509_ca"] > 0
    with pytest.raises(httpx.ConnectError):  # the same transport serves every later request
        https.handle_request(httpx.Request("GET", url))
    assert https.built is built


@pytest.mark.parametrize(("url", "https"), [("http://127.0.0.1:9/x", False), ("https://a/x", True)])
def test_only_https_urls_go_to_the_verifying_transport(url: str, https: bool) -> None:
    transports = SyncTransports()
    assert (transports.for_url(url) is transports.https) is https
    assert (transports.for_url(url) is transports.http) is not https


def test_a_given_transport_serves_every_url() -> None:
    given = httpx.MockTransport(lambda request: httpx.Response(200))
    transports = SyncTransports(given)
    assert transports.for_url("http://a/x") is transports.for_url("https://a/x") is given
