"""The small JSON manifest a generation hands to downstream tasks through XCom (never bytes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rivya_provider.client import GenerationTask


class ResultFile(BaseModel):
    """A result copied to the output path."""

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

    generation_id: str
    status: str
    model: str
    prompt: str | None = None
    params: dict[str, Any] = {}
    client_request_id: str | None = None
    primary_url: str | None = None
    result_urls: list[str] = []
    files: list[ResultFile] = []
    reserved_credits: int
    charged_credits: int
    created_at: str
    updated_at: str
    seconds: float
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
        return cls(
            generation_id=task.id,
            status=str(task.status),
            model=task.model,
            prompt=request.get("prompt"),
            params=request.get("params") or {},
            client_request_id=request.get("client_request_id"),
            primary_url=task.result.primary_url if task.result else None,
            result_urls=task.result_urls,
            files=files or [],
            reserved_credits=task.reserved_credits,
            charged_credits=task.final_credits,
            created_at=task.created_at.isoformat(),
            updated_at=task.updated_at.isoformat(),
            seconds=round((task.updated_at - task.created_at).total_seconds(), 3),
            origin=origin,
            idempotency_key=idempotency_key,
        )
