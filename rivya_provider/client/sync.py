"""``RivyaClient``: the blocking client of the Rivya Public API v1 (workers, scripts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import httpx
from tenacity import Retrying
from typing_extensions import Self

from rivya_provider.client import bodies, endpoints
from rivya_provider.client.base import ClientBase, fetched, status_log
from rivya_provider.client.catalog import CATALOG, ModelInfo, ModelSpec, shared_file
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
from rivya_provider.client.models import Credits, FileKind, GenerationRequest, RivyaFile
from rivya_provider.client.polling import wait_sync
from rivya_provider.client.rules import answers, replays, retries
from rivya_provider.client.tasks import GenerationTask
from rivya_provider.client.transports.sync import SyncTransports
from rivya_provider.client.uploads import UploadSource, prepare_upload


class RivyaClient(ClientBase):
    """Blocking client of the Rivya Public API v1.

    :param api_key: a Rivya API key (``rvya_sk_...``); never logged or shown in ``repr``.
    :param base_url: ``https://rivya.ai`` or an emulator's address.
    :param timeouts: seconds per HTTP phase; a request takes at most their sum in all.
    :param retry: how transient failures are retried.
    :param poll: how :meth:`wait_for_generation` polls.
    :param transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    :param sleep: called for every pause (retry backoff and polling); tests inject a recorder.
    :param clock: monotonic seconds, used for wait deadlines and retry budgets.
    :param requests_per_second: pace API requests to at most this rate, shared by every client
        of this key and base URL on the machine (downloads are not paced).
    :param limits: size and time caps (:class:`~rivya_provider.client.Limits`).
    :param allowed_hosts: private hosts results may come from besides the base URL's.
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
        limits: Limits | None = None,
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
        self._transports = SyncTransports(transport)
        self._api = self._transports.for_url(self.config.base_url)
        self._downloads = httpx.Client(
            **self._download_options(self._start_download_hop), **self._transports.client_options()
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections (the API's and the downloads' share one pool)."""
        self._downloads.close()

    @property
    def is_closed(self) -> bool:
        return self._downloads.is_closed

    def _start_download_hop(self, request: httpx.Request) -> None:
        self._urls.check(str(request.url), what="URL")
        self._start_hop(request)

    def _send(self, call: Call, *, failed: list[Exception] | None = None) -> httpx.Response:
        """Send ``call``, retrying what may succeed next time; return its 2xx answer, read.

        :param failed: collects the error of every failed attempt.
        """
        retrying = Retrying(
            sleep=self._sleep,
            **retries.retry_options(self.config.retry, call, clock=self._clock),
        )
        for attempt in retrying:
            with attempt:
                try:
                    return self._attempt(call)
                except Exception as exc:
                    if failed is not None:
                        failed.append(exc)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _attempt(self, call: Call, *, within: float | None = None) -> httpx.Response:
        """Send ``call`` once; ``within``: seconds it may wait for its turn (see ``_turn``)."""
        if pause := self._turn(call, within=within):
            self._sleep(pause)
        request = self._build_request(call)
        try:
            response = self._api.handle_request(request)
            response.request = request
            response = bodies.read_capped(response, self.config.limits.max_response_bytes)
        except httpx.RequestError as exc:
            raise answers.transport_error(call.label, exc) from exc
        self._note(response)
        return answers.checked(response)

    def list_models(self) -> list[ModelInfo]:
        """Return Rivya's model catalogue (public; the key is sent so an account sees its own)."""
        return fetched(endpoints.MODELS, self._send(endpoints.MODELS.call())).data

    def model_catalog(self) -> Mapping[str, ModelSpec]:
        """Return the rules inputs are checked against: Rivya's catalogue, read once per machine.

        Falls back to the built-in description of the documented models (for a minute) when
        ``/models`` cannot be read.
        """
        cached = self._catalog.cached()
        if cached is not None:
            return cached
        # The tasks of a wide mapped run start together, each in its own process: one of them
        # reads the catalogue while the others wait for its copy.
        with shared_file.turn(self.config.base_url):
            cached = self._catalog.cached()
            if cached is not None:
                return cached
            try:
                answer: httpx.Response | RivyaError = self._send(self._MODELS_CALL)
            except RivyaError as exc:
                answer = exc
            return self._keep_catalog(answer)

    def get_credits(self) -> Credits:
        """Return the wallet balance; also the cheapest way to prove a key works."""
        return fetched(endpoints.CREDITS, self._send(endpoints.CREDITS.call()))

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
            return fetched(endpoints.UPLOAD, self._send(self._upload_call(upload, handle)))

    def get_file(self, file_id: str) -> RivyaFile:
        """Return the metadata of an uploaded file."""
        return fetched(endpoints.FILE, self._send(endpoints.FILE.call(path_id=file_id)))

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
                answer = self._send(call, failed=failed)
            except IdempotencyConflictError as exc:
                self._sleep(conflicts.next_delay(exc))
                continue
            return replays.created_task(
                answer,
                scope=self.config.base_url,
                key=key,
                sent_at=sent_at,
                resent=any(replays.may_have_made(error) for error in failed),
            )

    def get_generation(self, task_id: str) -> GenerationTask:
        """Return a task's current status, credits and result (transient failures retried)."""
        call = endpoints.GENERATION.call(path_id=task_id)
        return fetched(endpoints.GENERATION, self._send(call))

    def poll_generation(self, task_id: str, *, turn_within: float | None = None) -> GenerationTask:
        """Return a task's status with one request, as waits poll: they decide what comes next.

        :param turn_within: seconds the request may wait for its turn in this process (pacing,
            a 429 met by another request); past that it fails at once with
            :class:`~rivya_provider.client.RequestNotSentError`.
        """
        call = endpoints.status_call(task_id)
        return fetched(endpoints.GENERATION, self._attempt(call, within=turn_within))

    def wait_for_generation(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        first_delay: float | None = None,
        raise_on_failure: bool = True,
    ) -> GenerationTask:
        """Poll until the task succeeds or fails (:mod:`rivya_provider.client.polling`).

        :param timeout: seconds before :class:`GenerationTimeoutError` (default from ``poll``).
        :param poll_interval: seconds between polls (default from ``poll``).
        :param first_delay: seconds before the first poll (default from ``poll``).
        :param raise_on_failure: raise :class:`GenerationFailedError` for a failed task.
        """
        wait = self._wait(
            task_id, timeout=timeout, poll_interval=poll_interval, first_delay=first_delay
        )
        task = wait_sync(
            lambda within: self.poll_generation(task_id, turn_within=within),
            wait,
            first=wait.schedule.first(),
            sleep=self._sleep,
            on_answer=status_log(),
        )
        if raise_on_failure:
            task.raise_for_failure()
        return task

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
        self._urls.check(url, what="URL")
        call = Call("GET", url, authenticated=False)
        retrying = Retrying(
            sleep=self._sleep,
            **retries.retry_options(self.config.retry, call, clock=self._clock),
        )
        for attempt in retrying:
            with attempt:
                sink = DownloadSink(destination, url=url, max_bytes=max_bytes)
                try:
                    with self._downloads.stream("GET", url) as response:
                        if not response.is_success:
                            cap = self.config.limits.max_response_bytes
                            raise answers.api_error(bodies.read_capped(response, cap))
                        sink.expect(response.headers.get("content-length"))
                        for chunk in response.iter_bytes(CHUNK_BYTES):
                            sink.write(chunk)
                    return sink.commit(response.headers.get("content-type"))
                except httpx.RequestError as exc:
                    sink.abort()
                    raise answers.transport_error(call.label, exc) from exc
                except BaseException:
                    sink.abort()
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")
