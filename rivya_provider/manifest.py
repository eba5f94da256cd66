"""The small JSON manifest a generation hands to downstream tasks through XCom (never bytes)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rivya_provider.client import GenerationTask


class ResultFile(BaseModel):
    """A result copied to the output path."""

    # Built when first used: the DAG processor imports this with every DAG file it parses.
    model_config = ConfigDict(defer_build=True)

    path: str
    url: str
    size_bytes: int
    content_type: str | None = None
    sha256: str


class GenerationManifest(BaseModel):
    """What one generation produced; ``model_dump(mode="json")`` is what lands in XCom.

    ``origin`` says how this try got the generation: ``submitted`` (new, charged),
    ``replayed`` (Rivya replayed the task instance's key) or ``resumed`` (recorded by an earlier
    try in ``task_state_store``).
    """

    model_config = ConfigDict(defer_build=True)

    generation_id: str
    status: str
    model: str
    prompt: str | None = None
    params: dict[str, Any] = {}
    client_request_id: str | None = None
    primary_url: str | None = None
    result_urls: list[str] = []
    #: How many results Rivya listed: more than ``result_urls`` holds when it listed more than
    #: the client keeps (16).
    result_count: int = 0
    files: list[ResultFile] = []
    reserved_credits: int | float
    charged_credits: int | float
    created_at: str | None = None
    updated_at: str | None = None
    #: Seconds from ``created_at`` to ``updated_at``, when Rivya reported both.
    seconds: float | None = None
    origin: str
    idempotency_key: str | None = None

    @classmethod
    def describe(
        cls,
        task: GenerationTask,
        *,
        request: dict[str, Any],
        origin: str,
        idempotency_key: str | None,
        files: list[ResultFile] | None = None,
    ) -> GenerationManifest:
        """Summarise ``task`` and the request (wire form) that produced it."""
        created, updated = task.created_at, task.updated_at
        return cls(
            generation_id=task.id,
            status=str(task.status),
            model=task.model or request.get("model") or "unknown",
            prompt=request.get("prompt"),
            params=request.get("params") or {},
            client_request_id=request.get("client_request_id"),
            primary_url=task.primary_url,
            result_urls=task.result_urls,
            result_count=task.result_count,
            files=files or [],
            reserved_credits=task.reserved_credits,
            charged_credits=task.final_credits,
            created_at=created.isoformat() if created else None,
            updated_at=updated.isoformat() if updated else None,
            seconds=round((updated - created).total_seconds(), 3) if created and updated else None,
            origin=origin,
            idempotency_key=idempotency_key,
        )

    @classmethod
    def read(cls, value: Any) -> GenerationManifest | None:
        """Return an XCom value as a manifest when it is one, else ``None`` (other tasks return
        other values)."""
        if not isinstance(value, dict) or not value.keys() >= _REQUIRED:
            return None
        try:
            return cls.model_validate(value)
        except ValidationError:
            return None

    @property
    def spend(self) -> int | float:
        """Credits this generation accounts for: the charge once settled, else the reservation."""
        settled = self.status in {"succeeded", "failed"}
        value = self.charged_credits if settled else self.reserved_credits
        return value if math.isfinite(value) else 0


#: Keys a dict must have to be read as a manifest.
_REQUIRED = frozenset(
    name for name, field in GenerationManifest.model_fields.items() if field.is_required()
)
