"""Sync and async Rivya clients: the same calls and rules, only the send step differs.

Every public method of :class:`RivyaClient` has an async twin on :class:`AsyncRivyaClient` with the
same name prefixed ``a``. What is sent, how answers are read and what is retried come from
:mod:`rivya_provider.client._rules`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, BinaryIO

import anyio
import httpx
from tenacity import AsyncRetrying, Retrying
from typing_extensions import Self

from rivya_provider.client import _rules
from rivya_provider.client._rules import (
    DEFAULT_BASE_URL,
    Call,
    ClientConfig,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from rivya_provider.client.catalog import validate_generation
from rivya_provider.client.downloads import (
    CHUNK_BYTES,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    Destination,
    DownloadedFile,
    DownloadSink,
)
from rivya_provider.client.errors import GenerationTimeoutError
from rivya_provider.client.models import (
    Credits,
    FileKind,
    GenerationRequest,
    GenerationTask,
    ModelInfo,
    ModelList,
    RivyaFile,
    TaskStatus,
)
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
    ) -> None:
        self.config = ClientConfig(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            poll=poll or PollPolicy(),
        )
        self._clock = clock or time.monotonic

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    @staticmethod
    def _create_call(
        request: GenerationRequest, *, idempotency_key: str | None, validate: bool
    ) -> Call:
        if validate:
            request = validate_generation(request)
        key = _rules.idempotency_key(idempotency_key)
        return Call(
            "POST", "/generations", json=request.to_wire(), headers={"Idempotency-Key": key}
        )

    @staticmethod
    def _upload_call(upload: PreparedUpload, handle: BinaryIO) -> Call:
        def files() -> dict[str, Any]:
            return upload.multipart(handle)

        return Call("POST", "/files", data=upload.form(), files=files)

    def _wait_plan(
        self, timeout: float | None, poll_interval: float | None, first: float | None
    ) -> _WaitPlan:
        policy = self.config.poll
        return _WaitPlan(
            clock=self._clock,
            timeout=policy.timeout if timeout is None else timeout,
            interval=policy.interval if poll_interval is None else poll_interval,
            first_delay=policy.first_delay if first is None else first,
        )


class _WaitPlan:
    """The polling schedule of one wait: when to poll next, and when to give up."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        timeout: float,
        interval: float,
        first_delay: float,
    ) -> None:
        self._clock = clock
        self._started = clock()
        self._deadline = self._started + timeout
        self._interval = interval
        self.first_delay = max(0.0, min(first_delay, timeout))
        self._last_status: TaskStatus | None = None

    def after(self, task: GenerationTask, *, raise_on_failure: bool) -> GenerationTask | float:
        """Return the task when it is done, else the seconds to sleep before the next poll."""
        elapsed = self._clock() - self._started
        if task.status != self._last_status:
            log.info("Rivya task %s is %s after %.1fs", task.id, task.status, elapsed)
            self._last_status = task.status
        if task.status.is_terminal:
            if raise_on_failure:
                task.raise_for_failure()
            return task
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise GenerationTimeoutError(
                task_id=task.id, last_status=str(task.status), waited_seconds=elapsed
            )
        return min(self._interval, remaining)


class RivyaClient(_ClientBase):
    """Blocking client of the Rivya Public API v1.

    :param api_key: a Rivya API key (``rvya_sk_...``); never logged or shown in ``repr``.
    :param base_url: ``https://rivya.ai`` or an emulator's address.
    :param timeouts: seconds per HTTP phase.
    :param retry: how transient failures are retried.
    :param poll: how :meth:`wait_for_generation` polls.
    :param transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    :param sleep: called for every pause (retry backoff and polling); tests inject a recorder.
    :param clock: monotonic seconds, used for wait deadlines.
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
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts,
            retry=retry,
            poll=poll,
            clock=clock,
        )
        self._sleep = sleep or time.sleep
        self._http = httpx.Client(transport=transport, **_rules.http_options(self.config))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _retrying(self, label: Call) -> Retrying:
        return Retrying(sleep=self._sleep, **_rules.retry_options(self.config.retry, label))

    def _send(self, call: Call) -> httpx.Response:
        for attempt in self._retrying(call):
            with attempt:
                request = _rules.build_request(self._http, self.config, call)
                try:
                    response = self._http.send(request)
                except httpx.TransportError as exc:
                    raise _rules.transport_error(call, exc) from exc
                return _rules.check_response(response)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def list_models(self) -> list[ModelInfo]:
        """Return the public model catalogue (no key needed)."""
        call = Call("GET", "/models", authenticated=False)
        return _rules.parse(ModelList, self._send(call)).data

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
            source, kind=kind, model=model, name=name, client_request_id=client_request_id
        )
        with upload.stream() as handle:
            return _rules.parse(RivyaFile, self._send(self._upload_call(upload, handle)))

    def get_file(self, file_id: str) -> RivyaFile:
        """Return the metadata of an uploaded file."""
        return _rules.parse(RivyaFile, self._send(Call("GET", f"/files/{file_id}")))

    def create_generation(
        self,
        request: GenerationRequest,
        *,
        idempotency_key: str | None = None,
        validate: bool = True,
    ) -> GenerationTask:
        """Submit a generation; every retry of this call reuses one Idempotency-Key.

        :param request: model, prompt, params and optional client_request_id.
        :param idempotency_key: replays the original task when sent again with the same body;
            a fresh key is made when omitted.
        :param validate: check known models locally first (turn off only for params Rivya added
            after this version).
        """
        call = self._create_call(request, idempotency_key=idempotency_key, validate=validate)
        return _rules.parse_created_task(self._send(call))

    def get_generation(self, task_id: str) -> GenerationTask:
        """Return a task's current status, credits and result."""
        return _rules.parse(GenerationTask, self._send(Call("GET", f"/generations/{task_id}")))

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
        plan = self._wait_plan(timeout, poll_interval, first_delay)
        delay = plan.first_delay
        while True:
            self._sleep(delay)
            outcome = plan.after(self.get_generation(task_id), raise_on_failure=raise_on_failure)
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
        call = Call("GET", url, authenticated=False)
        for attempt in self._retrying(call):
            with attempt:
                sink = DownloadSink(destination, url=url, max_bytes=max_bytes)
                try:
                    with self._http.stream("GET", url, follow_redirects=True) as response:
                        if not response.is_success:
                            response.read()
                            raise _rules.api_error(response)
                        sink.expect(response.headers.get("content-length"))
                        for chunk in response.iter_bytes(CHUNK_BYTES):
                            sink.write(chunk)
                    return sink.commit(response.headers.get("content-type"))
                except httpx.TransportError as exc:
                    sink.abort()
                    raise _rules.transport_error(call, exc) from exc
                except BaseException:
                    sink.abort()
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")


class AsyncRivyaClient(_ClientBase):
    """Asyncio client of the Rivya Public API v1; safe in Airflow's triggerer.

    Takes the same parameters as :class:`RivyaClient`, with an async ``sleep``.
    """

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
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts,
            retry=retry,
            poll=poll,
            clock=clock,
        )
        self._sleep = sleep or asyncio.sleep
        self._http = httpx.AsyncClient(transport=transport, **_rules.http_options(self.config))

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

    def _retrying(self, label: Call) -> AsyncRetrying:
        return AsyncRetrying(sleep=self._sleep, **_rules.retry_options(self.config.retry, label))

    async def _send(self, call: Call) -> httpx.Response:
        async for attempt in self._retrying(call):
            with attempt:
                request = _rules.build_request(self._http, self.config, call)
                try:
                    response = await self._http.send(request)
                except httpx.TransportError as exc:
                    raise _rules.transport_error(call, exc) from exc
                return _rules.check_response(response)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def alist_models(self) -> list[ModelInfo]:
        """Return the public model catalogue (no key needed)."""
        call = Call("GET", "/models", authenticated=False)
        return _rules.parse(ModelList, await self._send(call)).data

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
        upload = await anyio.to_thread.run_sync(
            lambda: prepare_upload(
                source, kind=kind, model=model, name=name, client_request_id=client_request_id
            )
        )
        with upload.stream() as handle:
            return _rules.parse(RivyaFile, await self._send(self._upload_call(upload, handle)))

    async def aget_file(self, file_id: str) -> RivyaFile:
        """Return the metadata of an uploaded file."""
        return _rules.parse(RivyaFile, await self._send(Call("GET", f"/files/{file_id}")))

    async def acreate_generation(
        self,
        request: GenerationRequest,
        *,
        idempotency_key: str | None = None,
        validate: bool = True,
    ) -> GenerationTask:
        """Submit a generation; see :meth:`RivyaClient.create_generation`."""
        call = self._create_call(request, idempotency_key=idempotency_key, validate=validate)
        return _rules.parse_created_task(await self._send(call))

    async def aget_generation(self, task_id: str) -> GenerationTask:
        """Return a task's current status, credits and result."""
        return _rules.parse(
            GenerationTask, await self._send(Call("GET", f"/generations/{task_id}"))
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
        plan = self._wait_plan(timeout, poll_interval, first_delay)
        delay = plan.first_delay
        while True:
            await self._sleep(delay)
            task = await self.aget_generation(task_id)
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
                except httpx.TransportError as exc:
                    await anyio.to_thread.run_sync(sink.abort)
                    raise _rules.transport_error(call, exc) from exc
                except BaseException:
                    await anyio.to_thread.run_sync(sink.abort)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")
