"""Submit a generation once per task instance, or find the one an earlier try submitted.

On Airflow 3.3+ the task instance's ``task_state_store`` survives retries (XCom does not): the
Rivya task id and the uploads are recorded there before any waiting. Below 3.3, or when the record
was lost in a crash, the deterministic key chain of :mod:`rivya_provider.idempotency` makes Rivya
replay the earlier task instead of billing a new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from rivya_provider import tasklog
from rivya_provider.client import (
    GenerationRequest,
    GenerationTask,
    NotFoundError,
    RivyaClient,
    RivyaError,
    TaskStatus,
)
from rivya_provider.idempotency import KeyChain

log = logging.getLogger(__name__)

GENERATION_KEY = "rivya_generation"
UPLOADS_KEY = "rivya_uploads"
#: Failed generations one try walks past before giving up (each failure cost nothing).
MAX_CHAIN_WALK = 25


class StateStore(Protocol):
    """The part of Airflow's ``task_state_store`` accessor this module uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class StoredGeneration(BaseModel):
    """What a try records about its generation; ``chain_id`` ties it to the inputs."""

    chain_id: str
    link: int
    task_id: str
    #: Local Unix time the generation was first submitted: its wait deadline counts from here.
    submitted_at: float | None = None


class TaskMemory:
    """What this task instance remembers across tries; forgetful when there is no store.

    :param store: ``context["task_state_store"]`` (Airflow 3.3+), or ``None``.
    """

    def __init__(self, store: StateStore | None) -> None:
        self.store = store

    @property
    def durable(self) -> bool:
        return self.store is not None

    def generation(self, chain: KeyChain) -> StoredGeneration | None:
        """Return the recorded generation of these inputs, if any (other inputs: none)."""
        if self.store is None:
            return None
        raw = self.store.get(GENERATION_KEY)
        try:
            stored = StoredGeneration.model_validate(raw) if raw else None
        except ValidationError:
            log.warning("Ignoring an unreadable %s record in task_state_store", GENERATION_KEY)
            return None
        return stored if stored is not None and stored.chain_id == chain.chain_id else None

    def remember_generation(
        self, chain: KeyChain, link: int, task_id: str, submitted_at: float | None = None
    ) -> None:
        if self.store is not None:
            record = StoredGeneration(
                chain_id=chain.chain_id, link=link, task_id=task_id, submitted_at=submitted_at
            )
            self.store.set(GENERATION_KEY, record.model_dump())

    def uploads(self) -> dict[str, dict[str, Any]]:
        """Return earlier uploads as ``{content sha256: reference media item}``."""
        if self.store is None:
            return {}
        raw = self.store.get(UPLOADS_KEY)
        return dict(raw) if isinstance(raw, dict) else {}

    def remember_upload(self, sha256: str, item: dict[str, Any]) -> None:
        if self.store is not None:
            self.store.set(UPLOADS_KEY, {**self.uploads(), sha256: item})


@dataclass(frozen=True)
class Submission:
    """The generation this try works with, and how it was obtained."""

    task: GenerationTask
    link: int
    idempotency_key: str
    #: ``submitted`` (new), ``replayed`` (the key chain found it) or ``resumed`` (recorded).
    origin: str
    #: Local Unix time the generation was submitted, as best known: its deadline counts from here.
    started_at: float
    #: Local Unix time the create was answered (a generation found again: ``started_at``): its
    #: polls count from here, as a create that was retried began its generation only at its last
    #: attempt, and even an answered first attempt began it after ``started_at``.
    answered_at: float

    @property
    def is_new(self) -> bool:
        return self.origin == "submitted"

    @property
    def reused(self) -> bool:
        """An earlier try's generation that had already succeeded: this try pays nothing."""
        return not self.is_new and self.task.status is TaskStatus.SUCCEEDED


def submit_or_resume(
    client: RivyaClient,
    request: GenerationRequest,
    *,
    chain: KeyChain,
    memory: TaskMemory,
    conflict_wait: float = 0.0,
    before_new: Callable[[], None] | None = None,
    wait_up_to: float | None = None,
) -> Submission:
    """Return the generation of this task instance: the recorded one, a replay, or a new one.

    A recorded generation that is queued, processing or succeeded is reused. A failed one moves the
    chain to its next key. At most one new generation is submitted per call.

    :param client: a blocking client.
    :param request: the validated request (uploads already resolved to URLs).
    :param chain: the key chain of this task instance and inputs.
    :param memory: the task instance's memory.
    :param conflict_wait: seconds a create keeps retrying ``idempotency_conflict`` (a create
        of an earlier try may still be running on Rivya's side).
    :param before_new: called before a generation that is not known to be paid already is
        submitted (a replay of the key would cost nothing, but cannot be told apart in
        advance); it raises to stop the submission.
    :param wait_up_to: seconds the task waits for a new generation, said in the log line of
        the submission (``None``: it does not wait).
    """
    first_link = 0
    stored = memory.generation(chain)
    earlier = _recorded_task(client, stored) if stored is not None else None
    if stored is not None and earlier is not None:
        key = chain.key(stored.link)
        tasklog.found_again(log, earlier, how="resumed", idempotency_key=key)
        if earlier.status is not TaskStatus.FAILED:
            started = stored.submitted_at or started_at_of(earlier)
            return Submission(earlier, stored.link, key, "resumed", started, started)
        first_link = stored.link + 1
    if before_new is not None:
        before_new()
    for link in range(first_link, first_link + MAX_CHAIN_WALK):
        key = chain.key(link)
        task = client.create_generation(
            request, idempotency_key=key, validate=False, conflict_wait=conflict_wait
        )
        answered_at = time.time()
        # This process's own create is timed by this process's clock, whatever Rivya's says.
        started = task.sent_at or started_at_of(task)
        found_again = task.replayed or (stored is not None and task.id == stored.task_id)
        # A create is answered queued: a failed answer is most likely an earlier try's generation,
        # found again through its key with nothing to say so (no replay header, no record). The
        # chain walks on unless Rivya's own clock shows the task is new; failures cost nothing.
        failed_before = task.status is TaskStatus.FAILED and task.created_before_sent is not False
        if not (found_again or failed_before):
            memory.remember_generation(chain, link, task.id, started)
            tasklog.submitted(log, task, idempotency_key=key, wait_up_to=wait_up_to)
            return Submission(task, link, key, "submitted", started, answered_at)
        memory.remember_generation(chain, link, task.id, started)
        task = client.get_generation(task.id)
        tasklog.found_again(log, task, how="replayed", idempotency_key=key)
        if task.status is not TaskStatus.FAILED:
            return Submission(task, link, key, "replayed", started, started)
    raise ChainExhaustedError(
        f"{MAX_CHAIN_WALK} earlier generations of this task instance failed; "
        "set fresh_generation_on_retry=True or change the inputs to start over"
    )


def started_at_of(task: GenerationTask) -> float:
    """Estimate when a generation this process did not submit was submitted: its ``created_at``,
    never later than now (a server clock ahead of ours must not stretch the deadline), else now.
    """
    now = time.time()
    if task.created_at is None:
        return now
    return min(task.created_at.timestamp(), now)


def _recorded_task(client: RivyaClient, stored: StoredGeneration) -> GenerationTask | None:
    """Fetch the recorded task; ``None`` when Rivya no longer knows it (the key chain decides)."""
    try:
        return client.get_generation(stored.task_id)
    except NotFoundError:
        log.warning(
            "Rivya does not know the recorded generation %s (another account or server?); "
            "falling back to the key chain",
            stored.task_id,
        )
        return None


class ChainExhaustedError(RivyaError):
    """Too many earlier generations of this task instance failed to keep walking the key chain."""
