"""One redaction step for every error text and log line the provider builds.

Kept free of other imports so the exception classes can use it.
"""

from __future__ import annotations

import logging
import re

_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
#: A Rivya key anywhere in a text; the documented placeholder ``rvya_sk_...`` stays readable.
_RIVYA_KEY = re.compile(r"rvya_sk_(?!\.\.\.)[^\s'\"<>,;)\]}]+")
REDACTED = "***"


#: Keys configured in this process (most recent last); a process holds them anyway.
_SECRETS: dict[str, None] = {}
_MAX_SECRETS = 256


def register_secret(key: str) -> None:
    """Make :func:`redact` remove ``key`` from every text it is given from now on."""
    if not key:
        return
    install_log_filters()
    _SECRETS.pop(key, None)
    _SECRETS[key] = None
    while len(_SECRETS) > _MAX_SECRETS:
        del _SECRETS[next(iter(_SECRETS))]


def redact(text: str) -> str:
    """Remove every registered key, bearer token and Rivya-looking key from ``text``."""
    for secret in list(_SECRETS):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(f"Bearer {REDACTED}", text)
    return _RIVYA_KEY.sub(f"rvya_sk_{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Redact a log record's text in place (rendered once, so its arguments are covered too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is logged as-is, not dropped
            return True
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


#: Loggers whose records may carry server-supplied text (httpcore logs raw response headers at
#: DEBUG); a filter applies only to records created on its own logger, so each is named.
LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "rivya_provider.client",
    "rivya_provider.resume",
    "rivya_provider.operators._references",
)
_FILTER = RedactingFilter()


def install_log_filters() -> None:
    """Attach the redacting filter to every logger in :data:`LOGGERS` (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
