"""The Airflow hook that turns a ``rivya`` Connection into Rivya clients."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import httpx
from airflow.providers.common.compat.sdk import BaseHook
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rivya_provider.client import (
    DEFAULT_BASE_URL,
    AsyncRivyaClient,
    FieldProblem,
    Limits,
    RequestValidationError,
    RetryPolicy,
    RivyaClient,
    RivyaError,
    Timeouts,
    check_api_key,
    normalise_base_url,
    register_secret,
)
from rivya_provider.exceptions import permanent_failure
from rivya_provider.hooks._shared_settings import shared_lookup

_LOOPBACK_NAMES = {"localhost"}


def _async_lookup_is_safe() -> bool:
    """Tell whether ``BaseHook.aget_connection`` exists and never blocks the event loop (3.3.2+)."""
    from airflow.providers.common.compat.sdk import Connection

    return hasattr(BaseHook, "aget_connection") and hasattr(Connection, "aextra_dejson")


class ConnectionExtras(BaseModel):
    """The optional settings kept in the Connection's extra JSON (empty form fields are null)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    backoff_max: float | None = Field(default=None, ge=0)
    retry_after_cap: float | None = Field(default=None, ge=0)
    retry_budget: float | None = Field(default=None, ge=0)
    requests_per_second: float | None = Field(default=None, gt=0)
    max_response_bytes: int | None = Field(default=None, gt=0)
    request_deadline: float | None = Field(default=None, gt=0)
    download_deadline: float | None = Field(default=None, gt=0)
    allowed_hosts: list[str] | None = None
    #: Credits one DAG run may spend (the budget operators fall back to); empty: no budget.
    credit_budget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: Credits all runs of a DAG may spend in one calendar period (UTC); empty: none.
    period_budget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: The period of ``period_budget``; empty: a month.
    budget_period: Literal["day", "week", "month"] | None = None

    def limits(self) -> Limits:
        default = Limits()
        return Limits(
            max_response_bytes=self.max_response_bytes or default.max_response_bytes,
            request_deadline=self.request_deadline or default.request_deadline,
            download_deadline=self.download_deadline or default.download_deadline,
        )

    def timeouts(self) -> Timeouts:
        default = Timeouts()
        read = self.timeout or default.read
        return Timeouts(
            connect=self.connect_timeout or default.connect,
            read=read,
            write=read,
            pool=default.pool,
        )

    def retry(self) -> RetryPolicy:
        default = RetryPolicy()
        return RetryPolicy(
            max_attempts=self.max_attempts or default.max_attempts,
            backoff_max=default.backoff_max if self.backoff_max is None else self.backoff_max,
            retry_after_cap=(
                default.retry_after_cap if self.retry_after_cap is None else self.retry_after_cap
            ),
            time_budget=default.time_budget if self.retry_budget is None else self.retry_budget,
        )


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to build a client from a Connection; hashable, the key hidden in repr."""

    base_url: str
    api_key: str
    timeouts: Timeouts
    retry: RetryPolicy
    requests_per_second: float | None = None
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"ClientSettings(base_url={self.base_url!r})"

    def kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "timeouts": self.timeouts,
            "retry": self.retry,
            "requests_per_second": self.requests_per_second,
            "limits": self.limits,
            "allowed_hosts": self.allowed_hosts,
        }


def base_url_of(host: str | None, port: int | None) -> str:
    """Build the base URL from the Connection's host (scheme and path optional) and port.

    A host without a scheme means https, except loopback hosts (a local emulator), which mean http.
    Port 0 means no port, as an empty one does: the UI of Airflow 3.3.2 needs a stored port for its
    Test button (docs/connection.md), and 0 is the one that leaves the base URL as it is.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    has_scheme = "://" in text
    url = httpx.URL(text if has_scheme else f"https://{text}")
    if not url.host:
        return text  # as given, to be refused naming the host (httpx would print it as "http:")
    if not has_scheme and _is_loopback(url.host):
        url = url.copy_with(scheme="http")
    if port:
        url = url.copy_with(port=port)
    return str(url).rstrip("/")


def _is_loopback(hostname: str) -> bool:
    if hostname in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def settings_from_connection(conn: Any) -> ClientSettings:
    """Read base URL, API key (password only) and extras from an Airflow Connection.

    :raises RequestValidationError: naming the Connection field that is missing or wrong.
    """
    where = f"connection {conn.conn_id!r}"
    if not (conn.password or "").strip():
        raise RequestValidationError(
            [FieldProblem("password", "holds the Rivya API key (rvya_sk_...) and is empty")],
            subject=where,
        )
    api_key = check_api_key(conn.password, field_name="password")
    _hide(api_key)
    try:
        extras = ConnectionExtras.model_validate(_extra_json(conn, where))
    except ValidationError as exc:
        raise RequestValidationError(_extra_problems(exc), subject=where) from None
    base_url = _base_url(conn, where)
    return ClientSettings(
        base_url=base_url,
        api_key=api_key,
        timeouts=extras.timeouts(),
        retry=extras.retry(),
        requests_per_second=extras.requests_per_second,
        limits=extras.limits(),
        allowed_hosts=tuple(extras.allowed_hosts or ()),
    )


def _base_url(conn: Any, where: str) -> str:
    """The Connection's base URL, checked: a problem names ``host`` or ``port``."""
    port = conn.port
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
    ):
        problem = FieldProblem("port", f"must be a port from 1 to 65535 (or empty), got {port!r}")
        raise RequestValidationError([problem], subject=where)
    try:
        return normalise_base_url(base_url_of(conn.host, port), field_name="host")
    except RequestValidationError as exc:
        raise RequestValidationError(exc.problems, subject=where) from None
    except (ValueError, httpx.InvalidURL) as exc:
        problem = FieldProblem("host", f"must be an http(s) URL or a host name ({exc})")
        raise RequestValidationError([problem], subject=where) from None


def _hide(api_key: str) -> None:
    """Have Airflow's log masker hide the key too (our own texts are redacted anyway)."""
    register_secret(api_key)
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return
    mask_secret(api_key)


def _extra_json(conn: Any, where: str) -> dict[str, Any]:
    """The extra as a JSON object; invalid JSON is an error, not silently no settings."""
    raw = conn.extra
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        problem = FieldProblem("extra", "is not valid JSON (it must be a JSON object)")
        raise RequestValidationError([problem], subject=where) from None
    if not isinstance(value, dict):
        problem = FieldProblem("extra", f"must be a JSON object, got {type(value).__name__}")
        raise RequestValidationError([problem], subject=where)
    return value


def _extra_problems(exc: ValidationError) -> list[FieldProblem]:
    """Name each bad extra and what is allowed, never its value (a key may be pasted there)."""
    allowed = ", ".join(ConnectionExtras.model_fields)
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(FieldProblem(f"extra.{key}", f"is not a setting; allowed: {allowed}"))
        else:
            problems.append(FieldProblem(f"extra.{key}", error["msg"]))
    return problems


# One pooled async client per event loop and connection settings: the triggerer runs thousands
# of triggers in one loop, and they should share connections rather than open a pool each.
_ASYNC_POOLS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[ClientSettings, AsyncRivyaClient]
] = weakref.WeakKeyDictionary()
# The task of each loop that closes its clients when the loop shuts down (kept: a task the
# loop alone refers to may be garbage-collected while pending).
_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def shared_async_client(settings: ClientSettings) -> AsyncRivyaClient:
    """Return the async client shared by the running event loop for these settings."""
    loop = asyncio.get_running_loop()
    pool = _ASYNC_POOLS.get(loop)
    if pool is None:
        pool = _ASYNC_POOLS[loop] = {}
        _close_with_loop(loop, pool)
    client = pool.get(settings)
    if client is None:
        client = pool[settings] = AsyncRivyaClient(**settings.kwargs())
    return client


def _close_with_loop(loop: asyncio.AbstractEventLoop, pool: dict[Any, AsyncRivyaClient]) -> None:
    """Close the loop's shared clients when it shuts down: left open, aiohttp logs "Unclosed
    client session" as an error at exit.

    A task of the loop waits for its end: ``asyncio.run`` (which Airflow's triggerer runs its loop
    with) cancels the tasks still pending when it finishes, and this one then closes the clients.
    """

    async def closing() -> None:
        try:
            await asyncio.Event().wait()  # until the loop's end cancels it
        finally:
            clients = list(pool.values())
            pool.clear()
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.aclose()

    _CLOSERS[loop] = loop.create_task(closing(), name="rivya-close-shared-clients")


class RivyaHook(BaseHook):
    """Talk to the Rivya Public API v1 through an Airflow Connection of type ``rivya``.

    The API key is read from the Connection's password only; the host holds the base URL
    (``https://rivya.ai`` when empty) and the extras hold timeouts and retry settings.

    :param rivya_conn_id: the Connection to use.
    """

    conn_name_attr = "rivya_conn_id"
    default_conn_name = "rivya_default"
    conn_type = "rivya"
    hook_name = "Rivya"

    def __init__(self, rivya_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rivya_conn_id = rivya_conn_id

    def __repr__(self) -> str:
        return f"RivyaHook(rivya_conn_id={self.rivya_conn_id!r})"

    @cached_property
    def _connection(self) -> Any:
        """The Airflow Connection (looked up once per hook: settings and extras share it)."""
        return self.get_connection(self.rivya_conn_id)

    @cached_property
    def settings(self) -> ClientSettings:
        """The client settings read from the Connection."""
        return settings_from_connection(self._connection)

    @cached_property
    def extras(self) -> ConnectionExtras:
        """The Connection's extras, checked."""
        conn = self._connection
        where = f"connection {conn.conn_id!r}"
        try:
            return ConnectionExtras.model_validate(_extra_json(conn, where))
        except ValidationError as exc:
            raise RequestValidationError(_extra_problems(exc), subject=where) from None

    @property
    def credit_budget(self) -> float | None:
        """The Connection's ``credit_budget`` extra: credits one DAG run may spend, or ``None``."""
        return self.extras.credit_budget

    @property
    def period_budget(self) -> float | None:
        """The ``period_budget`` extra: credits a DAG's runs may spend per period, or ``None``."""
        return self.extras.period_budget

    @property
    def budget_period(self) -> str | None:
        """The ``budget_period`` extra (``day``, ``week`` or ``month``), or ``None``."""
        return self.extras.budget_period

    @cached_property
    def client(self) -> RivyaClient:
        """The blocking client of this hook: one connection pool, reused by every call."""
        return RivyaClient(**self.settings.kwargs())

    def get_conn(self) -> RivyaClient:
        """Return the blocking client (Airflow's usual hook entry point)."""
        return self.client

    async def aget_settings(self) -> ClientSettings:
        """Read the Connection without blocking the event loop (safe in the triggerer)."""
        if _async_lookup_is_safe():
            conn = await self.aget_connection(self.rivya_conn_id)
            return settings_from_connection(conn)
        # Airflow 3.0 has no aget_connection, and before 3.3.2 it (and extra_dejson) masks
        # secrets with a blocking call to the supervisor: both are safe only off the loop.
        return await asyncio.to_thread(lambda: self.settings)

    async def aget_client(self) -> AsyncRivyaClient:
        """Return the async client shared per event loop and Connection settings."""
        return shared_async_client(await shared_lookup(self.rivya_conn_id, self.aget_settings))

    def close(self) -> None:
        """Close the blocking client's connections, if it was ever built."""
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form's hidden, relabelled and placeholder fields.

        Airflow 3.2+ reads the form from the provider info and ignores this method; 3.0 and 3.1
        ask the hook. They get no extra fields from the provider info, so the JSON extra stays
        visible there for timeouts and retries.
        """
        from rivya_provider.get_provider_info import get_provider_info

        (form,) = get_provider_info()["connection-types"]
        declared = form["ui-field-behaviour"]
        return {
            "hidden_fields": [name for name in declared["hidden-fields"] if name != "extra"],
            "relabeling": dict(declared["relabeling"]),
            "placeholders": dict(declared["placeholders"]),
        }

    def test_connection(self) -> tuple[bool, str]:
        """Prove the key works with ``GET /api/v1/credits`` (free, read-only)."""
        try:
            with RivyaClient(**self.settings.kwargs()) as client:
                credits = client.get_credits()
        except RivyaError as exc:
            # A refused key: say which connection holds it and how to fix it.
            return False, str(permanent_failure(exc, self.rivya_conn_id) or exc)
        return True, f"Connected to {self.settings.base_url}: {credits.current_credits} credits"
