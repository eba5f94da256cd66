"""Secrets, URLs and names the provider refuses to trust: one policy for every call site.

- Redaction: every error text the provider builds passes :func:`redact`, which removes each
  configured API key and anything that looks like a bearer token or a Rivya key.
- Ids: an id that goes into an API path is checked and percent-encoded (:func:`path_id`).
- URLs: result, redirect and reference URLs must be http(s); private, loopback, link-local and
  metadata addresses are refused unless they are the Connection's own host or allow-listed
  (:class:`UrlPolicy`).
- Names: local file names are built only from sanitised parts (:func:`safe_part`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from rivya_provider.client.errors import FieldProblem, RequestValidationError, UnsafeURLError
from rivya_provider.client.redaction import REDACTED, redact, register_secret

__all__ = [
    "REDACTED",
    "UrlPolicy",
    "check_api_key",
    "http_url_problem",
    "is_http_url",
    "path_id",
    "redact",
    "register_secret",
    "safe_part",
]

_KEY = re.compile(r"^[\x21-\x7e]{8,512}$")


def check_api_key(key: str | None, *, field_name: str) -> str:
    """Return the key if it is 8-512 printable ASCII characters without whitespace.

    :param key: the key as configured.
    :param field_name: the setting to name in the error (never the value).
    :raises RequestValidationError: naming ``field_name`` only.
    """
    value = (key or "").strip()
    if not _KEY.match(value):
        problem = FieldProblem(
            field_name,
            "must be a Rivya API key (rvya_sk_...): 8 to 512 printable ASCII characters without "
            "spaces or line breaks (the value is not shown)",
        )
        raise RequestValidationError([problem], subject="API key")
    return value


_ID_MAX = 255
_ID = re.compile(r"[A-Za-z0-9._~:@+=-]+")


def path_id(value: object, *, field_name: str) -> str:
    """Check an id that goes into an API path and return it percent-encoded.

    :raises RequestValidationError: naming ``field_name`` for an empty, overlong, dot-only or
        non-printable id.
    """
    text = value if isinstance(value, str) else ""
    problem = None
    if not isinstance(value, str) or not text:
        problem = f"must be a non-empty string, got {type(value).__name__}"
    elif len(text) > _ID_MAX:
        problem = f"must be at most {_ID_MAX} characters, got {len(text)}"
    elif not _ID.fullmatch(text) or text in {".", ".."}:
        problem = "may hold only letters, digits and ._~:@+=- (and is not '.' or '..')"
    if problem:
        raise RequestValidationError([FieldProblem(field_name, problem)])
    return quote(text, safe="")


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_MAX = 80


def safe_part(text: str, *, fallback: str = "generation") -> str:
    """Return ``text`` as a file-name part: only ``[A-Za-z0-9._-]``, no leading dot, bounded.

    A long part is cut and suffixed with a hash of the whole, so distinct ids stay distinct.
    """
    part = _UNSAFE_NAME.sub("_", text).strip("._") or fallback
    if len(part) <= _NAME_MAX:
        return part
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:12]
    return f"{part[: _NAME_MAX - 13]}-{digest}"


#: A host name as it goes on the wire (IDNA-encoded): letters, digits, dots, dashes, underscores.
_HOST_NAME = re.compile(rb"[A-Za-z0-9._-]+")


def http_url_problem(url: object) -> str | None:
    """Say what keeps ``url`` from being an absolute http(s) URL with a valid host and port.

    :returns: ``None`` when it is one.
    """
    if not isinstance(url, str) or not url:
        return "it is empty"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return str(exc)
    if parsed.scheme not in {"http", "https"}:
        return f"the scheme is {parsed.scheme or 'missing'}, not http or https"
    if not parsed.host:
        return "it has no host"
    if not (_is_ip(parsed.host) or _HOST_NAME.fullmatch(parsed.raw_host)):
        return f"{parsed.raw_host.decode('ascii', 'replace')!r} is not a host name"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"port {parsed.port} is not between 1 and 65535"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_http_url(url: object) -> bool:
    """Tell whether ``url`` is an absolute http(s) URL with a valid host and port."""
    return http_url_problem(url) is None


_METADATA_NAMES = {"metadata", "metadata.google.internal", "instance-data", "localhost"}


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _resolved(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []  # the request itself will fail with a transport error
    return [str(info[4][0]).split("%")[0] for info in infos]


def _origin(url: httpx.URL) -> tuple[str, int | None]:
    default = 443 if url.scheme == "https" else 80
    return url.host.lower(), url.port or default


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs results may be fetched from, and redirects may lead to.

    :param base_url: the Connection's base URL; its own host:port is always allowed.
    :param allowed_hosts: hosts (``name`` or ``name:port``) allowed even if private.
    """

    base_url: str
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, base_url: str, allowed_hosts: Iterable[str] = ()) -> UrlPolicy:
        return cls(base_url, frozenset(h.strip().lower() for h in allowed_hosts if h.strip()))

    def _allowed(self, url: httpx.URL) -> bool:
        host, port = _origin(url)
        if _origin(httpx.URL(self.base_url)) == (host, port):
            return True
        return host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts

    def is_own(self, url: str) -> bool:
        """Tell whether ``url`` is on the base URL's or an allowed origin (no lookup needed)."""
        # Every API request (thousands of polls in a triggerer) is under the base URL: a string
        # comparison, where parsing the URL costs more than a tenth of a poll.
        if url.startswith(f"{self.base_url.rstrip('/')}/"):
            return True
        return is_http_url(url) and self._allowed(httpx.URL(url))

    def check(self, url: str, *, what: str) -> httpx.URL:
        """Return ``url`` parsed, or raise :class:`UnsafeURLError` saying why it is refused.

        :param url: the URL to fetch.
        :param what: how errors name it (``result URL``, ``redirect``...).
        """
        shown = redact(url)[:200]
        if not is_http_url(url):
            raise UnsafeURLError(f"{what} {shown!r} refused: only http(s) URLs are fetched")
        parsed = httpx.URL(url)
        if self._allowed(parsed):
            return parsed
        host = parsed.host.lower()
        if host in _METADATA_NAMES or host.endswith((".localhost", ".internal")):
            raise UnsafeURLError(f"{what} {shown!r} refused: {host} is a local or metadata host")
        if any(_private(address) for address in _resolved(host)):
            raise UnsafeURLError(
                f"{what} {shown!r} refused: {host} is a private, loopback, link-local or "
                "metadata address (add it to the Connection's allowed_hosts to fetch it)"
            )
        return parsed
