"""The generation task as Rivya answers it: its status, result, error and credits.

A succeeded task keeps at most :data:`MAX_RESULTS` result URLs; a status beyond the documented
four is read onto them (:meth:`TaskStatus.from_reported`). The task a create returns is a
:class:`CreatedTask`, which also knows what the client learnt of that create.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, NamedTuple

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rivya_provider.client.models import Answer, Credit

log = logging.getLogger("rivya_provider.client")


class TaskStatus(str, Enum):
    """Lifecycle of a generation task; only ``succeeded`` and ``failed`` are terminal."""

    def __str__(self) -> str:
        return self.value

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)

    @classmethod
    def from_reported(cls, reported: str) -> TaskStatus:
        """Map any status Rivya reports onto the four this package acts on.

        The documented four map to themselves; a cancel-like status (``canceled``, ``expired``...)
        ended the task without a result, so it counts as ``failed``; any other unknown status is
        taken as still running, until the wait's deadline.
        """
        value = reported.strip().lower()
        if value in _DOCUMENTED_STATUSES:
            return cls(value)
        if value in CANCEL_LIKE_STATUSES:
            return cls.FAILED
        return cls.PROCESSING


_DOCUMENTED_STATUSES = frozenset(str(s) for s in TaskStatus)
#: Undocumented statuses that end a task without a result; treated as ``failed``.
CANCEL_LIKE_STATUSES = frozenset(
    {
        "canceled",
        "cancelled",
        "expired",
        "aborted",
        "rejected",
        "timed_out",
        "timeout",
        "error",
        "errored",
        "terminated",
        "deleted",
    }
)


#: Results one generation may list; more is a broken or hostile answer (images give one to four).
MAX_RESULTS = 16
#: Longest result URL accepted (signed CDN URLs stay far below).
MAX_URL_LENGTH = 4096


class TaskResult(Answer):
    """Where a succeeded task's outputs are; ``primary_url`` defaults to the first of ``urls``.

    At most :data:`MAX_RESULTS` URLs are kept (images give one to four); ``url_count`` says how
    many Rivya listed, so a longer list never fails a paid generation.
    """

    primary_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    urls: list[Annotated[str, Field(max_length=MAX_URL_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_RESULTS
    )
    #: How many result URLs Rivya listed (``urls`` keeps the first :data:`MAX_RESULTS`).
    url_count: int = 0

    @model_validator(mode="before")
    @classmethod
    def _keep_what_fits(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        listed = data.get("urls")
        listed = [] if listed is None else listed
        if not isinstance(listed, list):
            return data
        usable = [u for u in listed if isinstance(u, str) and 0 < len(u) <= MAX_URL_LENGTH]
        count = max(len(listed), _whole(data.get("url_count")))
        kept = min(len(usable), MAX_RESULTS)
        if kept < count:
            log.warning(
                "Rivya listed %d result URL(s); keeping %d and leaving out %d (at most %d are "
                "kept, each at most %d characters)",
                count,
                kept,
                count - kept,
                MAX_RESULTS,
                MAX_URL_LENGTH,
            )
        primary = data.get("primary_url")
        if not (isinstance(primary, str) and len(primary) <= MAX_URL_LENGTH):
            primary = None
        return {**data, "primary_url": primary, "urls": usable[:MAX_RESULTS], "url_count": count}

    @model_validator(mode="after")
    def _default_primary(self) -> TaskResult:
        if self.primary_url is None and self.urls:
            self.primary_url = self.urls[0]
        return self

    @property
    def all_urls(self) -> list[str]:
        """Every URL kept, primary first, without duplicates."""
        first = [self.primary_url] if self.primary_url else []
        return list(dict.fromkeys([*first, *self.urls]))


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class TaskError(Answer):
    code: str = "generation_failed"
    message: str = ""

    @field_validator("code", "message", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)


class GenerationTask(Answer):
    """A generation task as returned by create and get.

    Only ``id`` and ``status`` are required: the docs show shorter and longer shapes of the same
    task. ``status`` is one of the four documented values (see :meth:`TaskStatus.from_reported`);
    ``reported_status`` keeps what Rivya actually said.
    """

    id: str = Field(min_length=1)
    status: TaskStatus
    reported_status: str = ""
    model: str | None = None
    reserved_credits: Credit = 0
    final_credits: Credit = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    result: TaskResult | None = None
    error: TaskError | None = None

    @property
    def status_as_reported(self) -> str:
        """The status in Rivya's own words, as logs show it (``status`` when none was kept)."""
        return self.reported_status or str(self.status)

    @model_validator(mode="before")
    @classmethod
    def _read_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            reported = data["status"]
            # A task dumped by this package keeps what Rivya first reported.
            data = {"reported_status": reported, **data}
            data["status"] = TaskStatus.from_reported(reported)
            if reported.strip().lower() in CANCEL_LIKE_STATUSES and not data.get("error"):
                data["error"] = {
                    "code": reported.strip().lower(),
                    "message": f"Rivya reported the generation as {reported!r}",
                }
        return data

    @field_validator("reserved_credits", "final_credits", mode="before")
    @classmethod
    def _no_null_credits(cls, value: Any) -> Any:
        return 0 if value is None else value

    @property
    def replayed(self) -> bool:
        """True when a create answered with an existing task for its Idempotency-Key (only the
        task a create returns, a :class:`CreatedTask`, can tell)."""
        return False

    @property
    def sent_at(self) -> float | None:
        """Local Unix time this process first sent the create that made this task.

        ``None`` for a task not made by a create of this process (Rivya replayed one made
        elsewhere, or it was fetched by id): its age is known only from Rivya's ``created_at``.
        """
        return None

    @property
    def created_before_sent(self) -> bool | None:
        """Whether Rivya's ``created_at``, read on its own clock (its ``Date`` header), predates
        the create that answered with this task; ``None`` when nothing tells.

        A hint only: a server whose clock disagrees with itself makes a new task look older, so
        it never decides :attr:`replayed` nor a deadline.
        """
        return None

    def raise_for_failure(self) -> None:
        """Raise :class:`GenerationFailedError` (with Rivya's code and message) when failed."""
        if self.status is TaskStatus.FAILED:
            from rivya_provider.client.errors import GenerationFailedError

            raise GenerationFailedError(
                task_id=self.id,
                code=self.error.code if self.error else "generation_failed",
                message=self.error.message if self.error else "no reason given",
            )

    @property
    def primary_url(self) -> str | None:
        """The main result URL, once the task succeeded."""
        return self.result.primary_url if self.result else None

    @property
    def result_urls(self) -> list[str]:
        """All result URLs kept, primary first, without duplicates."""
        return self.result.all_urls if self.result else []

    @property
    def result_count(self) -> int:
        """How many result URLs Rivya listed (more than :attr:`result_urls` past the cap)."""
        return max(self.result.url_count, len(self.result_urls)) if self.result else 0


class CreateFacts(NamedTuple):
    """What a client knows of the create that answered with a task (see :class:`CreatedTask`)."""

    replayed: bool = False
    sent_at: float | None = None
    created_before_sent: bool | None = None


class CreatedTask(GenerationTask):
    """A task as a create answered it, with what the client knows of that create.

    Only creates pay for it: a status poll's task has no private attributes to set up.
    """

    _create: CreateFacts = PrivateAttr(default_factory=CreateFacts)

    @property
    def replayed(self) -> bool:
        return self._create.replayed

    @property
    def sent_at(self) -> float | None:
        return self._create.sent_at

    @property
    def created_before_sent(self) -> bool | None:
        return self._create.created_before_sent
