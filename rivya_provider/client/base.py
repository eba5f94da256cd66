"""What both clients share: their settings, how each call is made, and their waits' decisions.

Only the send step differs between :class:`~rivya_provider.client.sync.RivyaClient` and
:class:`~rivya_provider.client.aio.AsyncRivyaClient`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO

import httpx

from rivya_provider.client import bodies, endpoints, safety, transports
from rivya_provider.client.catalog import ModelSpec, validate_generation
from rivya_provider.client.catalog.reading import Catalog, CatalogReader
from rivya_provider.client.catalog.wire import ModelList
from rivya_provider.client.config import (
    DEFAULT_BASE_URL,
    ClientConfig,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from rivya_provider.client.endpoints import Call, Endpoint
from rivya_provider.client.errors import RequestNotSentError, RivyaError
from rivya_provider.client.flow.governor import shared_governor
from rivya_provider.client.flow.pacing import shared_pacer
from rivya_provider.client.models import GenerationRequest
from rivya_provider.client.polling import PollSchedule, Wait
from rivya_provider.client.rules import answers, requests
from rivya_provider.client.tasks import GenerationTask
from rivya_provider.client.uploads import PreparedUpload

log = logging.getLogger("rivya_provider.client")


class ClientBase:
    """Configuration, request building and the catalogue, shared by both clients."""

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
        limits: Limits | None = None,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.config = ClientConfig(
            api_key=api_key,
            base_url=base_url,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            poll=poll or PollPolicy(),
            requests_per_second=requests_per_second,
            limits=limits or Limits(),
            allowed_hosts=frozenset(allowed_hosts),
        )
        self._clock = clock or time.monotonic
        self._pacer = shared_pacer(
            base_url=self.config.base_url, api_key=self.config.api_key, rate=requests_per_second
        )
        # The requests of one machine to one account slow down together after a 429: a worker's
        # tasks, each in a process of its own, and a triggerer's waits (governor.py). A client
        # given its own clock keeps its governor in this process, on that clock.
        self._governor = shared_governor(
            base_url=self.config.base_url, api_key=api_key, machine_wide=clock is None
        )
        self._build_request = requests.RequestBuilder(self.config)
        self._catalog = CatalogReader(self.config.base_url)
        self._urls = safety.UrlPolicy.of(self.config.base_url, self.config.allowed_hosts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    def _turn(self, call: Call, *, within: float | None) -> float:
        """Seconds to wait before sending ``call``: pacing, and the process's 429 governor.

        :param within: seconds the call may wait for its turn (``None``: as long as it takes).
        :raises RequestNotSentError: when its turn comes later than that.
        """
        held = self._governor.reserve(now=self._clock())
        pause = max(self._pacer.reserve() if self._pacer is not None else 0.0, held)
        if within is not None and pause > within:
            raise RequestNotSentError(
                f"{call.label} not sent: this process holds its Rivya requests for another "
                f"{pause:.1f}s (pacing, or a 429 met by another request), longer than the "
                f"{within:.1f}s this request may wait"
            )
        return pause

    def _note(self, response: httpx.Response) -> None:
        """Tell the process's 429 governor how an API request was answered."""
        if response.status_code != 429:
            self._governor.answered(now=self._clock())
            return
        retry_after = answers.parse_retry_after(response.headers.get("retry-after"))
        capped = None if retry_after is None else self.config.retry.capped(retry_after)
        self._governor.throttled(now=self._clock(), retry_after=capped)

    def _download_options(self, start: Callable[[httpx.Request], Any]) -> dict[str, Any]:
        """``httpx`` client options for downloads: redirects, and ``start`` on every hop."""
        return {
            "headers": requests.client_headers(self.config),
            "timeout": self.config.timeouts.to_httpx(),
            "follow_redirects": True,
            "max_redirects": self.config.limits.max_redirects,
            "event_hooks": {"request": [start]},
        }

    def _start_hop(self, request: httpx.Request) -> None:
        """Start a download hop's deadline (every redirect hop gets a deadline of its own)."""
        seconds = self.config.limits.download_seconds(self.config.timeouts)
        request.extensions[transports.DEADLINE] = time.monotonic() + seconds

    @staticmethod
    def _create_call(
        request: GenerationRequest, *, idempotency_key: str | None, catalog: Catalog | None
    ) -> Call:
        if catalog is not None:
            request = validate_generation(request, catalog=catalog)
        key = requests.idempotency_key(idempotency_key)
        return endpoints.CREATE.call(json=request.to_wire(), headers={"Idempotency-Key": key})

    @staticmethod
    def _upload_call(upload: PreparedUpload, handle: BinaryIO) -> Call:
        def files() -> dict[str, Any]:
            return upload.multipart(handle)

        return endpoints.UPLOAD.call(data=upload.form(), files=files)

    #: ``/models`` is retried briefly (a 429 or a 5xx need not drop the checks to the built-in
    #: catalogue), within the time the machine's other processes wait for this one's copy.
    _MODELS_CALL = endpoints.MODELS.call(time_budget=10.0)

    def _keep_catalog(self, answer: httpx.Response | RivyaError) -> Mapping[str, ModelSpec]:
        """Keep what ``/models`` answered (or why it did not) as this machine's catalogue."""
        if isinstance(answer, httpx.Response):
            try:
                models = answers.parse(ModelList, answer).data
            except RivyaError as exc:
                answer = exc
            else:
                text = bodies.body(answer).decode("utf-8", "replace")
                return self._catalog.keep(models, body=text)
        return self._catalog.keep_failure(str(answer))

    def _wait(
        self,
        task_id: str,
        *,
        timeout: float | None,
        poll_interval: float | None,
        first_delay: float | None,
    ) -> Wait:
        """The decisions of a ``wait_for_generation``: the client's poll policy, as overridden."""
        given = {"timeout": timeout, "interval": poll_interval, "first_delay": first_delay}
        policy = dataclasses.replace(
            self.config.poll, **{k: v for k, v in given.items() if v is not None}
        )
        return Wait(
            task_id=task_id,
            schedule=PollSchedule(interval=policy.interval, first_delay=policy.first_delay),
            deadline=self._clock() + policy.timeout,
            retry=self.config.retry,
            clock=self._clock,
        )


def fetched(endpoint: Endpoint[answers.ModelT], response: httpx.Response) -> answers.ModelT:
    """Read an answer of ``endpoint`` into its model."""
    return answers.parse(endpoint.answer, response)


def status_log() -> Callable[[GenerationTask, Wait], None]:
    """A wait's progress for the log: one line each time the generation's status changes."""
    last: list[str] = []

    def note(task: GenerationTask, wait: Wait) -> None:
        status = task.status_as_reported
        if last and last[0] == status:
            return
        last[:] = [status]
        log.info(
            "Rivya task %s is %s after %.0fs of waiting, %.0fs left before the timeout",
            task.id,
            status,
            wait.waited(),
            max(0.0, wait.remaining()),
        )

    return note
