"""``AsyncRivyaClient``: the asyncio client, safe in Airflow's triggerer.

Every method of :class:`~rivya_provider.client.sync.RivyaClient` has a twin here, prefixed
``a``. Thousands of triggers share one of these per event loop: requests wait their turn in the
process's 429 governor and in an in-flight gate that follows the round trips.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType

import anyio
import httpx
from tenacity import AsyncRetrying
from typing_extensions import Self

from rivya_provider.client import bodies, endpoints
from rivya_provider.client.base import ClientBase, fetched, status_log
from rivya_provider.client.catalog import CATALOG, ModelInfo, ModelSpec
from rivya_provider.client.config import DEFAULT_BASE_URL, Limits, PollPolicy, RetryPolicy, Timeouts
from rivya_provider.client.downloads import (
    CHUNK_BYTES,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    Destination,
    DownloadedFile,
    DownloadSink,
)
from rivya_provider.client.endpoints import Call
from rivya_provider.client.errors import IdempotencyConflictError, RivyaError
from rivya_provider.client.flow.in_flight import AdaptiveLimit
from rivya_provider.client.models import Credits, FileKind, GenerationRequest, RivyaFile
from rivya_provider.client.polling import wait_async
from rivya_provider.client.rules import answers, replays, retries
from rivya_provider.client.tasks import GenerationTask
from rivya_provider.client.transports import async_transport
from rivya_provider.client.uploads import UploadSource, prepare_upload


class AsyncRivyaClient(ClientBase):
    """Asyncio client of the Rivya Public API v1; safe in Airflow's triggerer.

    Takes the same parameters as :class:`~rivya_provider.client.RivyaClient`, with an async
    ``sleep``, and:

    :param max_in_flight: API requests sent at once at most; the others wait their turn. The
        client sends up to :attr:`MIN_IN_FLIGHT` at once, and more, up to this, while the round
        trips show the wait is the network's (:mod:`rivya_provider.client.flow.in_flight`).
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
        limits: Limits | None = None,
        allowed_hosts: Iterable[str] = (),
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight must be a whole number >= 1, got {max_in_flight!r}")
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
        self._sleep = sleep or asyncio.sleep
        # Thousands of triggers share this client in one event loop: requests wait their turn
        # here, every connection of the pool stays alive, and only as many are in flight as
        # the round trips call for (each holds objects every garbage collection walks).
        self._in_flight = AdaptiveLimit(
            floor=min(self.MIN_IN_FLIGHT, max_in_flight), ceiling=max_in_flight
        )
        self._api = transport or async_transport(pool_size=max_in_flight)
        self._downloads = httpx.AsyncClient(
            transport=self._api, **self._download_options(self._start_download_hop)
        )

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
        """Close the client's connections (the API's and the downloads' share one pool)."""
        await self._downloads.aclose()

    @property
    def is_closed(self) -> bool:
        return self._downloads.is_closed

    @property
    def pool_size(self) -> int | None:
        """Connections the client keeps at most (``None``: a transport given by the caller)."""
        size = getattr(self._api, "pool_size", None)
        return size if isinstance(size, int) else None

    async def _start_download_hop(self, request: httpx.Request) -> None:
        # The check may resolve a host name: off the event loop.
        if not self._urls.is_own(str(request.url)):
            await anyio.to_thread.run_sync(lambda: self._urls.check(str(request.url), what="URL"))
        self._start_hop(request)

    async def _send(self, call: Call, *, failed: list[Exception] | None = None) -> httpx.Response:
        """Send ``call``, retrying what may succeed next time; return its 2xx answer, read.

        :param failed: collects the error of every failed attempt.
        """
        # A first attempt that succeeds builds no tenacity object: each is some forty objects in
        # reference cycles that only the garbage collector frees, and in a triggerer those
        # collections stop the event loop. A failed first attempt hands its error to tenacity
        # as attempt 1's outcome: retries, waits, the time budget and the logs are as if
        # tenacity had run it.
        started = self._clock()
        try:
            return await self._attempt(call)
        except Exception as exc:  # tenacity decides, and re-raises what it does not retry
            first: Exception | None = exc
            if failed is not None:
                failed.append(exc)
        options = retries.retry_options(self.config.retry, call, clock=self._clock, started=started)
        async for attempt in AsyncRetrying(sleep=self._sleep, **options):
            with attempt:
                if first is not None:
                    error, first = first, None
                    raise error
                try:
                    return await self._attempt(call)
                except Exception as exc:
                    if failed is not None:
                        failed.append(exc)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(self, call: Call, *, within: float | None = None) -> httpx.Response:
        """Send ``call`` once; ``within``: seconds it may wait for its turn (see ``_turn``)."""
        if pause := self._turn(call, within=within):
            await self._sleep(pause)
        # The slot covers building the request too: thousands of polls falling due together
        # then wait cheaply, instead of each doing its work in the same turn of the event loop.
        taken = await self._in_flight.acquire()
        refused = True  # until an answer comes back that is not a 429 or 5xx
        try:
            request = self._build_request(call)
            try:
                response = await self._api.handle_async_request(request)
                response.request = request
                response = await bodies.aread_capped(
                    response, self.config.limits.max_response_bytes
                )
            except httpx.RequestError as exc:
                raise answers.transport_error(call.label, exc) from exc
            refused = response.status_code == 429 or response.status_code >= 500
        finally:
            self._in_flight.release(taken, refused=refused)
        self._note(response)
        return answers.checked(response)

    async def alist_models(self) -> list[ModelInfo]:
        """Return Rivya's model catalogue; see :meth:`RivyaClient.list_models`."""
        return fetched(endpoints.MODELS, await self._send(endpoints.MODELS.call())).data

    async def amodel_catalog(self) -> Mapping[str, ModelSpec]:
        """Return the rules inputs are checked against; see :meth:`RivyaClient.model_catalog`."""
        cached = self._catalog.cached()
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
        return fetched(endpoints.CREDITS, await self._send(endpoints.CREDITS.call()))

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
            return fetched(endpoints.UPLOAD, await self._send(self._upload_call(upload, handle)))

    async def aget_file(self, file_id: str) -> RivyaFile:
        """Return the metadata of an uploaded file."""
        return fetched(endpoints.FILE, await self._send(endpoints.FILE.call(path_id=file_id)))

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
        key = call.headers["Idempotency-Key"]
        conflicts = retries.ConflictWait(
            budget=conflict_wait,
            clock=self._clock,
            key=key,
            client_request_id=request.client_request_id,
        )
        sent_at, failed = time.time(), list[Exception]()
        while True:
            try:
                answer = await self._send(call, failed=failed)
            except IdempotencyConflictError as exc:
                await self._sleep(conflicts.next_delay(exc))
                continue
            return replays.created_task(
                answer,
                scope=self.config.base_url,
                key=key,
                sent_at=sent_at,
                resent=any(replays.may_have_made(error) for error in failed),
            )

    async def aget_generation(self, task_id: str) -> GenerationTask:
        """Return a task's current status, credits and result (transient failures retried)."""
        call = endpoints.GENERATION.call(path_id=task_id)
        return fetched(endpoints.GENERATION, await self._send(call))

    async def apoll_generation(
        self, task_id: str, *, turn_within: float | None = None
    ) -> GenerationTask:
        """Return a task's status with one request; see :meth:`RivyaClient.poll_generation`."""
        call = endpoints.status_call(task_id)
        return fetched(endpoints.GENERATION, await self._attempt(call, within=turn_within))

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
        wait = self._wait(
            task_id, timeout=timeout, poll_interval=poll_interval, first_delay=first_delay
        )
        task = await wait_async(
            lambda within: self.apoll_generation(task_id, turn_within=within),
            wait,
            first=wait.schedule.first(),
            sleep=self._sleep,
            on_answer=status_log(),
        )
        if raise_on_failure:
            task.raise_for_failure()
        return task

    async def adownload(
        self,
        url: str,
        destination: Destination,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> DownloadedFile:
        """Stream a result URL to a path or file object; see :meth:`RivyaClient.download`."""
        await anyio.to_thread.run_sync(lambda: self._urls.check(url, what="URL"))
        call = Call("GET", url, authenticated=False)
        options = retries.retry_options(self.config.retry, call, clock=self._clock)
        async for attempt in AsyncRetrying(sleep=self._sleep, **options):
            with attempt:
                sink = await anyio.to_thread.run_sync(
                    lambda: DownloadSink(destination, url=url, max_bytes=max_bytes)
                )
                try:
                    async with self._downloads.stream("GET", url) as response:
                        if not response.is_success:
                            cap = self.config.limits.max_response_bytes
                            raise answers.api_error(await bodies.aread_capped(response, cap))
                        sink.expect(response.headers.get("content-length"))
                        async for chunk in response.aiter_bytes(CHUNK_BYTES):
                            await anyio.to_thread.run_sync(sink.write, chunk)
                    content_type = response.headers.get("content-type")
                    return await anyio.to_thread.run_sync(sink.commit, content_type)
                except httpx.RequestError as exc:
                    await anyio.to_thread.run_sync(sink.abort)
                    raise answers.transport_error(call.label, exc) from exc
                except BaseException:
                    await anyio.to_thread.run_sync(sink.abort)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")
