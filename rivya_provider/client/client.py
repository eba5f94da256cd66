"""Sync and async Rivya clients: the same calls and rules, only the send step differs.

Every public method of :class:`RivyaClient` has an async twin on :class:`AsyncRivyaClient` with the
same name prefixed ``a``. What is sent, how answers are read and what is retried come from
:mod:`rivya_provider.client._rules`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, BinaryIO

import anyio
import httpx
from pydantic import ValidationError
from tenacity import AsyncRetrying, Retrying
from typing_extensions import Self

from rivya_provider.client import _rules, bounded, catalog_file, live_catalog, safety
from rivya_provider.client._rules import (
    DEFAULT_BASE_URL,
    Call,
    ClientConfig,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from rivya_provider.client.catalog import CATALOG, ModelSpec, validate_generation
from rivya_provider.client.downloads import (
    CHUNK_BYTES,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    Destination,
    DownloadedFile,
    DownloadSink,
)
from rivya_provider.client.errors import (
    GenerationTimeoutError,
    IdempotencyConflictError,
    RivyaAPIError,
    RivyaError,
    is_retryable,
)
from rivya_provider.client.in_flight import AdaptiveLimit
from rivya_provider.client.models import (
    Credits,
    FileKind,
    GenerationRequest,
    GenerationTask,
    ModelInfo,
    ModelList,
    RivyaFile,
)
from rivya_provider.client.pacing import shared_governor, shared_pacer
from rivya_provider.client.uploads import PreparedUpload, UploadSource, prepare_upload

log = logging.getLogger("rivya_provider.client")


class _ClientBase:
    """Configuration and request building shared by both clients."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        clock: Callable[[], float] | None = None,
        requests_per_second: float | None = None,
        limits: bounded.Limits | None = None,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.config = ClientConfig(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            poll=poll or PollPolicy(),
            requests_per_second=requests_per_second,
            limits=limits or bounded.Limits(),
            allowed_hosts=frozenset(allowed_hosts),
        )
        self._clock = clock or time.monotonic
        self._pacer = shared_pacer(
            base_url=self.config.base_url, api_key=self.config.api_key, rate=requests_per_second
        )

    def _pause_for_pacing(self) -> float:
        """Seconds to wait before the next API request (client-side pacing)."""
        return self._pacer.reserve() if self._pacer is not None else 0.0

    def _http_options(
        self, transport: Any, *, asynchronous: bool, pool_size: int | None = None
    ) -> dict[str, Any]:
        """The httpx options: shared rules, plus the URL policy, deadlines and caps."""
        options = bounded.client_options(
            api_prefix=f"{self.config.base_url}{_rules.API_PREFIX}/",
            limits=self.config.limits,
            policy=safety.UrlPolicy.of(self.config.base_url, self.config.allowed_hosts),
            asynchronous=asynchronous,
            pool_size=pool_size,
        )
        if transport is not None:  # tests' mock transports: no sockets to bound
            options["transport"] = transport
            options.pop("mounts", None)
        return {**_rules.http_options(self.config), **options}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    @staticmethod
    def _create_call(
        request: GenerationRequest,
        *,
        idempotency_key: str | None,
        catalog: Mapping[str, ModelSpec] | None,
    ) -> Call:
        if catalog is not None:
            request = validate_generation(request, catalog=catalog)
        key = _rules.idempotency_key(idempotency_key)
        return Call(
            "POST", "/generations", json=request.to_wire(), headers={"Idempotency-Key": key}
        )

    _MODELS_CALL = Call("GET", "/models", max_attempts=1)

    def _cached_catalog(self) -> Mapping[str, ModelSpec] | None:
        """Return this process's catalogue, else one another process of the machine shared."""
        cached = live_catalog.CACHE.get(self.config.base_url)
        if cached is not None:
            return cached
        shared = catalog_file.read(self.config.base_url)
        if shared is None:
            return None
        if shared.body is None:
            return self._keep_fallback(f"{shared.error}, in another process", shared.expires_in)
        try:
            models = ModelList.model_validate_json(shared.body).data
        except ValidationError:
            return None
        return live_catalog.CACHE.put(
            self.config.base_url,
            live_catalog.catalog_from_models(models),
            ttl=shared.expires_in,
        )

    def _keep_catalog(self, answer: httpx.Response | RivyaError) -> Mapping[str, ModelSpec]:
        """Keep ``/models``' answer, or why there was none, and share it with other processes."""
        if isinstance(answer, httpx.Response):
            try:
                models = _rules.parse(ModelList, answer).data
            except RivyaError as exc:
                answer = exc
            else:
                ttl = live_catalog.CATALOG_TTL_SECONDS
                catalog_file.write(self.config.base_url, body=answer.text, ttl=ttl)
                catalog = live_catalog.catalog_from_models(models)
                return live_catalog.CACHE.put(self.config.base_url, catalog, ttl=ttl)
        ttl = live_catalog.FALLBACK_TTL_SECONDS
        catalog_file.write(self.config.base_url, body=None, error=str(answer), ttl=ttl)
        return self._keep_fallback(str(answer), ttl)

    def _keep_fallback(self, why: str, ttl: float) -> Mapping[str, ModelSpec]:
        log.warning(
            "Could not read Rivya's model catalogue (%s); checking inputs against the "
            "built-in description of the documented models",
            why,
        )
        return live_catalog.CACHE.put(self.config.base_url, CATALOG, ttl=ttl)

    @staticmethod
    def _upload_call(upload: PreparedUpload, handle: BinaryIO) -> Call:
        def files() -> dict[str, Any]:
            return upload.multipart(handle)

        return Call("POST", "/files", data=upload.form(), files=files)

    def _conflict_wait(
        self, call: Call, request: GenerationRequest, budget: float
    ) -> _ConflictWait:
        return _ConflictWait(
            budget=budget,
            clock=self._clock,
            key=call.headers["Idempotency-Key"],
            request=request,
        )

    def _wait_plan(
        self,
        task_id: str,
        timeout: float | None,
        poll_interval: float | None,
        first: float | None,
    ) -> _WaitPlan:
        policy = self.config.poll
        return _WaitPlan(
            task_id=task_id,
            retry=self.config.retry,
            clock=self._clock,
            timeout=policy.timeout if timeout is None else timeout,
            interval=policy.interval if poll_interval is None else poll_interval,
            first_delay=policy.first_delay if first is None else first,
        )


class _ConflictWait:
    """How long a create keeps retrying an ``idempotency_conflict``, and how it backs off."""

    _FIRST = 1.0
    _LONGEST = 30.0

    def __init__(
        self,
        *,
        budget: float,
        clock: Callable[[], float],
        key: str,
        request: GenerationRequest,
    ) -> None:
        self._clock = clock
        self._started = clock()
        self._budget = budget
        self._key = key
        self._request = request
        self._attempt = 0

    def next_delay(self, error: IdempotencyConflictError) -> float:
        """Return the pause before the next attempt, or raise ``error`` naming the key."""
        waited = self._clock() - self._started
        remaining = self._budget - waited
        if remaining <= 0:
            error.idempotency_key = self._key
            error.client_request_id = self._request.client_request_id
            error.waited_seconds = waited
            raise error
        self._attempt += 1
        backoff = random.uniform(0, min(self._LONGEST, self._FIRST * 2**self._attempt))  # noqa: S311
        delay = max(backoff, error.retry_after or 0.0)
        log.warning(
            "Rivya answered idempotency_conflict for key %s (%s); the first request may still be "
            "running: retrying in %.1fs (%.0fs left)",
            self._key,
            error.message,
            delay,
            remaining,
        )
        return min(delay, remaining)


class _WaitPlan:
    """The polling schedule of one wait: when to poll next, and when to give up."""

    def __init__(
        self,
        *,
        task_id: str,
        retry: RetryPolicy,
        clock: Callable[[], float],
        timeout: float,
        interval: float,
        first_delay: float,
    ) -> None:
        self._task_id = task_id
        self._retry = retry
        self._errors = 0
        self._clock = clock
        self._started = clock()
        self._deadline = self._started + timeout
        self._interval = interval
        self.first_delay = max(0.0, min(first_delay, timeout))
        self._last_status: str | None = None

    def after(self, task: GenerationTask, *, raise_on_failure: bool) -> GenerationTask | float:
        """Return the task when it is done, else the seconds to sleep before the next poll."""
        self._errors = 0
        elapsed = self._clock() - self._started
        reported = task.status_as_reported
        if reported != self._last_status:
            log.info(
                "Rivya task %s is %s after %.0fs of waiting, %.0fs left before the timeout",
                task.id,
                reported,
                elapsed,
                max(0.0, self._deadline - self._clock()),
            )
            self._last_status = reported
        if task.status.is_terminal:
            if raise_on_failure:
                task.raise_for_failure()
            return task
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise GenerationTimeoutError(
                task_id=task.id, last_status=reported, waited_seconds=elapsed
            )
        return min(self._interval, remaining)

    def after_error(self, error: RivyaError) -> float:
        """Return the pause before polling again after a failed poll, or raise.

        Transient failures never end the wait before its deadline (the generation may be paid);
        other errors are raised as they are.
        """
        if not is_retryable(error):
            raise error
        self._errors += 1
        waited = self._clock() - self._started
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise GenerationTimeoutError(
                task_id=self._task_id,
                last_status=f"{self._last_status or 'unknown'} (last poll failed: {error})",
                waited_seconds=waited,
            ) from error
        delay = _rules.poll_error_delay(
            self._errors, interval=self._interval, error=error, policy=self._retry
        )
        log.warning(
            "Polling Rivya task %s failed (%d in a row: %s); polling again in %.1fs, %.0fs "
            "before the deadline",
            self._task_id,
            self._errors,
            error,
            delay,
            remaining,
        )
        return min(delay, remaining)


class RivyaClient(_ClientBase):
    """Blocking client of the Rivya Public API v1.

    :param api_key: a Rivya API key (``rvya_sk_...``); never logged or shown in ``repr``.
    :param base_url: ``https://rivya.ai`` or an emulator's address.
    :param timeouts: seconds per HTTP phase.
    :param retry: how transient failures are retried.
    :param poll: how :meth:`wait_for_generation` polls.
    :param transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    :param sleep: called for every pause (retry backoff and polling); tests inject a recorder.
    :param clock: monotonic seconds, used for wait deadlines and retry budgets.
    :param requests_per_second: pace API requests to at most this rate, shared by every client
        of this key and base URL in the process (downloads are not paced).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        requests_per_second: float | None = None,
        limits: bounded.Limits | None = None,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts,
            retry=retry,
            poll=poll,
            clock=clock,
            requests_per_second=requests_per_second,
            limits=limits,
            allowed_hosts=allowed_hosts,
        )
        self._sleep = sleep or time.sleep
        self._http = httpx.Client(**self._http_options(transport, asynchronous=False))
        self._build_request = _rules.RequestBuilder(self._http, self.config)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _retrying(self, label: Call) -> Retrying:
        return Retrying(
            sleep=self._sleep, **_rules.retry_options(self.config.retry, label, clock=self._clock)
        )

    def _send(self, call: Call) -> httpx.Response:
        for attempt in self._retrying(call):
            with attempt:
                if pause := self._pause_for_pacing():
                    self._sleep(pause)
                request = self._build_request(call)
                try:
                    with bounded.deadline_scope():
                        response = self._http.send(request, stream=True)
                        cap = self.config.limits.max_response_bytes
                        response = bounded.read_capped(response, cap)
                except httpx.RequestError as exc:
                    _rules.note_attempt(self.config, call, None)
                    raise _rules.transport_error(call, exc) from exc
                _rules.note_attempt(self.config, call, response)
                return _rules.check_response(response)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def list_models(self) -> list[ModelInfo]:
        """Return Rivya's model catalogue (public; the key is sent so an account sees its own)."""
        return _rules.parse(ModelList, self._send(Call("GET", "/models"))).data

    def model_catalog(self) -> Mapping[str, ModelSpec]:
        """Return the rules inputs are checked against: Rivya's catalogue, read once per process.

        Falls back to the built-in description of the documented models (for a minute) when
        ``/models`` cannot be read.
        """
        cached = self._cached_catalog()
        if cached is not None:
            return cached
        # The tasks of a wide mapped run start together, each in its own process: one of them
        # reads the catalogue while the others wait for its copy.
        with catalog_file.turn(self.config.base_url):
            cached = self._cached_catalog()
            if cached is not None:
                return cached
            try:
                answer: httpx.Response | RivyaError = self._send(self._MODELS_CALL)
            except RivyaError as exc:
                answer = exc
            return self._keep_catalog(answer)

    def get_credits(self) -> Credits:
        """Return the wallet balance; also the cheapest way to prove a key works."""
        return _rules.parse(Credits, self._send(Call("GET", "/credits")))

    def upload_file(
        self,
        source: UploadSource,
        *,
        kind: FileKind | str | None = None,
        model: str | None = None,
        name: str | None = None,
        client_request_id: str | None = None,
    ) -> RivyaFile:
        """Upload a reference file, streamed, after checking its real type and size locally.

        :param source: a path, bytes, or a seekable binary file object.
        :param kind: ``image``, ``video`` or ``audio``; inferred from the content when omitted.
        :param model: apply this model's file limits (Rivya checks it accepts the kind).
        :param name: the file name Rivya records.
        :param client_request_id: your trace id (at most 128 characters).
        """
        upload = prepare_upload(
            source,
            kind=kind,
            model=model,
            name=name,
            client_request_id=client_request_id,
            catalog=self.model_catalog() if model else CATALOG,
        )
        with upload.stream() as handle:
            return _rules.parse(RivyaFile, self._send(self._upload_call(upload, handle)))

    def get_file(self, file_id: str) -> RivyaFile:
        """Return the metadata of an uploaded file."""
        return _rules.parse(
            RivyaFile,
            self._send(Call("GET", f"/files/{safety.path_id(file_id, field_name='file_id')}")),
        )

    def create_generation(
        self,
        request: GenerationRequest,
        *,
        idempotency_key: str | None = None,
        validate: bool = True,
        conflict_wait: float = 0.0,
    ) -> GenerationTask:
        """Submit a generation; every retry of this call reuses one Idempotency-Key.

        :param request: model, prompt, params and optional client_request_id.
        :param idempotency_key: replays the original task when sent again with the same body;
            a fresh key is made when omitted.
        :param validate: check the request against Rivya's model catalogue first.
        :param conflict_wait: seconds to keep retrying ``idempotency_conflict`` answers (the
            first request with the key may still be running), with backoff.
        """
        catalog = self.model_catalog() if validate else None
        call = self._create_call(request, idempotency_key=idempotency_key, catalog=catalog)
        conflicts = self._conflict_wait(call, request, conflict_wait)
        while True:
            sent_at = time.time()
            try:
                return _rules.parse_created_task(
                    self._send(call), config=self.config, call=call, sent_at=sent_at
                )
            except IdempotencyConflictError as exc:
                self._sleep(conflicts.next_delay(exc))

    def get_generation(self, task_id: str) -> GenerationTask:
        """Return a task's current status, credits and result."""
        return _rules.parse(
            GenerationTask,
            self._send(
                Call("GET", f"/generations/{safety.path_id(task_id, field_name='task_id')}")
            ),
        )

    def wait_for_generation(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        first_delay: float | None = None,
        raise_on_failure: bool = True,
    ) -> GenerationTask:
        """Poll until the task succeeds or fails.

        :param timeout: seconds before :class:`GenerationTimeoutError` (default from ``poll``).
        :param poll_interval: seconds between polls (default from ``poll``).
        :param first_delay: seconds before the first poll (default from ``poll``).
        :param raise_on_failure: raise :class:`GenerationFailedError` for a failed task.
        """
        plan = self._wait_plan(task_id, timeout, poll_interval, first_delay)
        delay = plan.first_delay
        while True:
            self._sleep(delay)
            try:
                task = self.get_generation(task_id)
            except RivyaError as exc:
                delay = plan.after_error(exc)
                continue
            outcome = plan.after(task, raise_on_failure=raise_on_failure)
            if isinstance(outcome, GenerationTask):
                return outcome
            delay = outcome

    def download(
        self,
        url: str,
        destination: Destination,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> DownloadedFile:
        """Stream a result URL to a path (atomically) or a binary file object.

        Result URLs are fetched without the API key: they may live on another host.

        :param url: a result URL from a succeeded task.
        :param destination: a file path, or a writable binary file object.
        :param max_bytes: fail (leaving nothing behind) past this many bytes.
        """
        safety.UrlPolicy.of(self.config.base_url, self.config.allowed_hosts).check(url, what="URL")
        call = Call("GET", url, authenticated=False)
        for attempt in self._retrying(call):
            with attempt:
                sink = DownloadSink(destination, url=url, max_bytes=max_bytes)
                try:
                    with (
                        bounded.deadline_scope(),
                        self._http.stream("GET", url, follow_redirects=True) as response,
                    ):
                        if not response.is_success:
                            response.read()
                            raise _rules.api_error(response)
                        sink.expect(response.headers.get("content-length"))
                        for chunk in response.iter_bytes(CHUNK_BYTES):
                            sink.write(chunk)
                    return sink.commit(response.headers.get("content-type"))
                except httpx.RequestError as exc:
                    sink.abort()
                    raise _rules.transport_error(call, exc) from exc
                except BaseException:
                    sink.abort()
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")


def _keep_no_cookies(response: httpx.Response) -> None:
    return None


class AsyncRivyaClient(_ClientBase):
    """Asyncio client of the Rivya Public API v1; safe in Airflow's triggerer.

    Takes the same parameters as :class:`RivyaClient`, with an async ``sleep``, and:

    :param max_in_flight: API requests sent at once at most; the others wait their turn. The
        client sends up to :attr:`MIN_IN_FLIGHT` at once, and more, up to this, while the round
        trips show the wait is the network's (:mod:`rivya_provider.client.in_flight`).
    """

    #: Requests sent at once while the round trips give no sign that more would go faster: on
    #: a loop that is itself the queue, more in flight answer no sooner, and their objects make
    #: the garbage collector's full passes come more often (docs/performance.md).
    MIN_IN_FLIGHT = 4
    #: Default ceiling of requests in flight, and the connection pool's size.
    MAX_IN_FLIGHT = 200

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        requests_per_second: float | None = None,
        limits: bounded.Limits | None = None,
        allowed_hosts: Iterable[str] = (),
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts,
            retry=retry,
            poll=poll,
            clock=clock,
            limits=limits,
            allowed_hosts=allowed_hosts,
            requests_per_second=requests_per_second,
        )
        self._sleep = sleep or asyncio.sleep
        # The waits of a triggerer share one account's rate limit: after a 429 they all slow down.
        self._governor = shared_governor(base_url=self.config.base_url, api_key=api_key)
        # Thousands of triggers share this client in one event loop: requests wait their turn
        # here, every connection of the pool stays alive, and only as many are in flight as
        # the round trips call for (each holds objects every garbage collection walks).
        self._in_flight = AdaptiveLimit(
            floor=min(self.MIN_IN_FLIGHT, max_in_flight), ceiling=max_in_flight
        )
        options = self._http_options(transport, asynchronous=True, pool_size=max_in_flight)
        self._http = httpx.AsyncClient(**options)
        self._build_request = _rules.RequestBuilder(self._http, self.config)
        # API requests go straight to the client's one transport (httpx mounts none for the
        # environment's proxies when given a transport): they follow no redirects and keep no
        # cookies, and httpx's send would add only its layers, a seventh of a poll's CPU.
        self._transport: httpx.AsyncBaseTransport = options["transport"]
        self._request_hooks = options["event_hooks"]["request"]
        # Rivya's API sets no cookies, and a jar shared by every trigger of the loop should not
        # keep any: skipping httpx's look for them saves about a tenth of a poll's CPU.
        self._http.cookies.extract_cookies = _keep_no_cookies  # type: ignore[method-assign]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _retrying(self, label: Call, *, started: float | None = None) -> AsyncRetrying:
        options = _rules.retry_options(self.config.retry, label, clock=self._clock, started=started)
        return AsyncRetrying(sleep=self._sleep, **options)

    async def _send(self, call: Call) -> httpx.Response:
        # A first attempt that succeeds builds no tenacity object: each is some forty objects in
        # reference cycles that only the garbage collector frees, and in a triggerer polling
        # thousands of waits those collections stopped the event loop. A failed first attempt
        # hands its error to tenacity as attempt 1's outcome: retries, waits, the time budget
        # and the logs are as if tenacity had run it.
        started = self._clock()
        try:
            return await self._attempt(call)
        except Exception as exc:  # tenacity decides, and re-raises what it does not retry
            failed: Exception | None = exc
        async for attempt in self._retrying(call, started=started):
            with attempt:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                return await self._attempt(call)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(self, call: Call) -> httpx.Response:
        governed = self._governor.reserve(now=self._clock())
        if pause := max(self._pause_for_pacing(), governed):
            await self._sleep(pause)
        # The slot covers building the request too: thousands of polls falling due together
        # then wait cheaply, instead of each doing its work in the same turn of the event loop.
        taken = await self._in_flight.acquire()
        refused = True  # until an answer comes back that is not a 429 or 5xx
        try:
            request = self._build_request(call)
            cap = self.config.limits.max_response_bytes
            request.extensions[bounded.READ_CAP] = cap  # aiohttp's transport reads it whole itself
            try:
                response = await self._exchange(request)
                response = await bounded.aread_capped(response, cap)
            except httpx.RequestError as exc:
                _rules.note_attempt(self.config, call, None)
                raise _rules.transport_error(call, exc) from exc
            refused = response.status_code == 429 or response.status_code >= 500
        finally:
            self._in_flight.release(taken, refused=refused)
        _rules.note_attempt(self.config, call, response)
        try:
            checked = _rules.check_response(response)
        except RivyaAPIError as exc:
            self._note_throttling(exc)
            raise
        self._governor.answered()
        return checked

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send one API request: what ``httpx.AsyncClient.send`` does for it.

        Its body comes read when the transport honours :data:`bounded.READ_CAP`, else unread.
        """
        for hook in self._request_hooks:  # the URL policy and the request's deadline
            await hook(request)
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    def _note_throttling(self, error: RivyaAPIError) -> None:
        """Tell the governor whether an error answer was a 429 (and its ``Retry-After``)."""
        if error.status_code != 429:
            self._governor.answered()
            return
        retry_after = (
            None if error.retry_after is None else self.config.retry.capped(error.retry_after)
        )
        self._governor.throttled(now=self._clock(), retry_after=retry_after)

    async def alist_models(self) -> list[ModelInfo]:
        """Return Rivya's model catalogue; see :meth:`RivyaClient.list_models`."""
        return _rules.parse(ModelList, await self._send(Call("GET", "/models"))).data

    async def amodel_catalog(self) -> Mapping[str, ModelSpec]:
        """Return the rules inputs are checked against; see :meth:`RivyaClient.model_catalog`."""
        cached = self._cached_catalog()
        if cached is not None:
            return cached
        # No waiting on other processes' turn here: that would block the event loop.
        try:
            answer: httpx.Response | RivyaError = await self._send(self._MODELS_CALL)
        except RivyaError as exc:
            answer = exc
        return self._keep_catalog(answer)

    async def aget_credits(self) -> Credits:
        """Return the wallet balance; also the cheapest way to prove a key works."""
        return _rules.parse(Credits, await self._send(Call("GET", "/credits")))

    async def aupload_file(
        self,
        source: UploadSource,
        *,
        kind: FileKind | str | None = None,
        model: str | None = None,
        name: str | None = None,
        client_request_id: str | None = None,
    ) -> RivyaFile:
        """Upload a reference file; see :meth:`RivyaClient.upload_file`."""
        catalog = await self.amodel_catalog() if model else CATALOG
        upload = await anyio.to_thread.run_sync(
            lambda: prepare_upload(
                source,
                kind=kind,
                model=model,
                name=name,
                client_request_id=client_request_id,
                catalog=catalog,
            )
        )
        with upload.stream() as handle:
            return _rules.parse(RivyaFile, await self._send(self._upload_call(upload, handle)))

    async def aget_file(self, file_id: str) -> RivyaFile:
        """Return the metadata of an uploaded file."""
        return _rules.parse(
            RivyaFile,
            await self._send(
                Call("GET", f"/files/{safety.path_id(file_id, field_name='file_id')}")
            ),
        )

    async def acreate_generation(
        self,
        request: GenerationRequest,
        *,
        idempotency_key: str | None = None,
        validate: bool = True,
        conflict_wait: float = 0.0,
    ) -> GenerationTask:
        """Submit a generation; see :meth:`RivyaClient.create_generation`."""
        catalog = await self.amodel_catalog() if validate else None
        call = self._create_call(request, idempotency_key=idempotency_key, catalog=catalog)
        conflicts = self._conflict_wait(call, request, conflict_wait)
        while True:
            sent_at = time.time()
            try:
                return _rules.parse_created_task(
                    await self._send(call), config=self.config, call=call, sent_at=sent_at
                )
            except IdempotencyConflictError as exc:
                await self._sleep(conflicts.next_delay(exc))

    async def aget_generation(self, task_id: str) -> GenerationTask:
        """Return a task's current status, credits and result."""
        return _rules.parse(
            GenerationTask,
            await self._send(
                Call("GET", f"/generations/{safety.path_id(task_id, field_name='task_id')}")
            ),
        )

    async def await_for_generation(
        self,
        task_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 -- a polling budget, twin of the sync one
        poll_interval: float | None = None,
        first_delay: float | None = None,
        raise_on_failure: bool = True,
    ) -> GenerationTask:
        """Poll until the task succeeds or fails; see :meth:`RivyaClient.wait_for_generation`."""
        plan = self._wait_plan(task_id, timeout, poll_interval, first_delay)
        delay = plan.first_delay
        while True:
            await self._sleep(delay)
            try:
                task = await self.aget_generation(task_id)
            except RivyaError as exc:
                delay = plan.after_error(exc)
                continue
            outcome = plan.after(task, raise_on_failure=raise_on_failure)
            if isinstance(outcome, GenerationTask):
                return outcome
            delay = outcome

    async def adownload(
        self,
        url: str,
        destination: Destination,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> DownloadedFile:
        """Stream a result URL to a path or file object; see :meth:`RivyaClient.download`."""
        policy = safety.UrlPolicy.of(self.config.base_url, self.config.allowed_hosts)
        await anyio.to_thread.run_sync(lambda: policy.check(url, what="URL"))
        call = Call("GET", url, authenticated=False)
        async for attempt in self._retrying(call):
            with attempt:
                sink = await anyio.to_thread.run_sync(
                    lambda: DownloadSink(destination, url=url, max_bytes=max_bytes)
                )
                try:
                    async with self._http.stream("GET", url, follow_redirects=True) as response:
                        if not response.is_success:
                            await response.aread()
                            raise _rules.api_error(response)
                        sink.expect(response.headers.get("content-length"))
                        async for chunk in response.aiter_bytes(CHUNK_BYTES):
                            await anyio.to_thread.run_sync(sink.write, chunk)
                    content_type = response.headers.get("content-type")
                    return await anyio.to_thread.run_sync(sink.commit, content_type)
                except httpx.RequestError as exc:
                    await anyio.to_thread.run_sync(sink.abort)
                    raise _rules.transport_error(call, exc) from exc
                except BaseException:
                    await anyio.to_thread.run_sync(sink.abort)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")
