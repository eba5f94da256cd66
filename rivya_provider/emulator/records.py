"""The records the emulator stores (keys, tasks, files), and how each looks on the wire."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from rivya_provider.emulator.faults import TaskFate
from rivya_provider.emulator.images import ImageSpec
from rivya_provider.emulator.profiles import Profile


class TaskStatus(str, Enum):
    """The four documented statuses, and ``canceled`` for the cancel fault (beyond the docs)."""

    def __str__(self) -> str:
        return self.value

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.PROCESSING)


def iso_timestamp(seconds: float) -> str:
    """Format epoch seconds as Rivya does: ISO 8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(math.floor(seconds * 1000) / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


@dataclass
class Task:
    """A generation task and its schedule; its status follows the clock."""

    id: str
    account: str
    model: str
    prompt: str
    params: dict[str, Any]
    reserved_credits: int
    fate: TaskFate
    created_at: float
    processing_at: float
    done_at: float
    result_url: str
    image: ImageSpec
    status: TaskStatus = TaskStatus.QUEUED
    final_credits: int = 0

    def next_change(self) -> float | None:
        """Return when the status changes next, ``None`` once terminal."""
        if self.status is TaskStatus.QUEUED:
            return self.processing_at
        if self.status is TaskStatus.PROCESSING:
            return self.done_at
        return None

    def advance(self, now: float) -> bool:
        """Move to the status due at ``now``; return True on reaching a terminal status."""
        if self.status.is_terminal:
            return False
        if now >= self.done_at:
            self.status = {"fails": TaskStatus.FAILED, "cancels": TaskStatus.CANCELED}.get(
                self.fate.ending, TaskStatus.SUCCEEDED
            )
            return True
        if now >= self.processing_at:
            self.status = TaskStatus.PROCESSING
        return False

    def to_wire(self, profile: Profile) -> dict[str, Any]:
        """Return the task as the API shows it.

        :param profile: the active profile (its ``unknown_status`` replaces ``processing``).
        """
        updated = {
            TaskStatus.QUEUED: self.created_at,
            TaskStatus.PROCESSING: self.processing_at,
        }.get(self.status, self.done_at)
        succeeded = self.status is TaskStatus.SUCCEEDED
        failed = self.status is TaskStatus.FAILED
        status = str(self.status)
        if self.status is TaskStatus.PROCESSING and profile.unknown_status:
            status = profile.unknown_status
        return {
            "id": self.id,
            "status": status,
            "model": self.model,
            "reserved_credits": self.reserved_credits,
            "final_credits": self.final_credits,
            "created_at": iso_timestamp(self.created_at),
            "updated_at": iso_timestamp(updated),
            "result": {"primary_url": self.result_url, "urls": [self.result_url]}
            if succeeded
            else None,
            "error": {"code": "generation_failed", "message": "the generation failed; no charge"}
            if failed
            else None,
        }


@dataclass
class StoredFile:
    id: str
    account: str
    kind: str
    mime_type: str
    name: str
    safe_name: str
    model: str | None
    data: bytes
    created_at: float
    url: str
    duration_token: str | None

    def to_wire(self, profile: Profile) -> dict[str, Any]:
        """Return the file object in the profile's field spelling.

        :param profile: the active profile (``file_fields``).
        """
        if profile.file_fields == "minimal":
            small: dict[str, Any] = {"file_id": self.id, "url": self.url, "kind": self.kind}
            if self.duration_token is not None:
                small["durationToken"] = self.duration_token
            return small
        body: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "url": self.url,
            "kind": self.kind,
            "mime_type": self.mime_type,
            "size_bytes": len(self.data),
            "name": self.name,
            "model": self.model,
            "created_at": iso_timestamp(self.created_at),
        }
        if self.duration_token is not None:
            body["duration_token"] = self.duration_token
        if profile.file_fields == "camel":
            body = {_CAMEL.get(k, k): v for k, v in body.items()}
        return body


_CAMEL = {
    "id": "fileId",
    "mime_type": "mimeType",
    "size_bytes": "sizeBytes",
    "duration_token": "durationToken",
    "created_at": "createdAt",
}


#: Every scope a new Rivya key gets.
ALL_SCOPES = frozenset(
    {
        "models:read",
        "generations:create",
        "generations:read",
        "files:create",
        "files:read",
        "credits:read",
        "webhooks:manage",
        "chat:create",
        "chat:read",
    }
)


class KeyStatus(str, Enum):
    def __str__(self) -> str:
        return self.value

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ApiKey:
    key: str
    account: str
    scopes: frozenset[str]
    status: KeyStatus


@dataclass(frozen=True)
class NewTask:
    """What a create needs besides the account: the validated request and its schedule."""

    model: str
    prompt: str
    params: dict[str, Any]
    cost: int
    fate: Callable[[], TaskFate]
    result_url: Callable[[str], str]
    image: ImageSpec


@dataclass(frozen=True)
class CreateResult:
    """Outcome of :meth:`EmulatorState.begin_create`."""

    outcome: Literal["created", "replayed", "conflict", "in_flight", "insufficient"]
    task: Task | None = None
    balance: int = 0


def fingerprint(body: Any) -> str:
    """Return the idempotency fingerprint of a JSON body (key order does not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
