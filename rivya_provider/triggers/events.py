"""The one event a Rivya trigger yields, and how the resumed task reads it back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from rivya_provider.client import (
    GenerationFailedError,
    GenerationTask,
    GenerationTimeoutError,
    InvalidInputError,
    RivyaAPIError,
    RivyaError,
    RivyaTransportError,
    UnexpectedResponseError,
    error_class_for,
)

#: ``code`` of an error event for a local check that failed in the triggerer (e.g. a Connection
#: without an API key): retrying cannot fix it.
INVALID_INPUT = "invalid_input"


class GenerationEvent(BaseModel):
    """Payload of the trigger's single event; plain JSON values only.

    ``status`` is ``success`` (``task`` holds the succeeded task), ``failed`` (the generation
    failed: ``code`` and ``message`` say why), ``timeout`` (the deadline passed; ``last_status``)
    or ``error`` (polling hit an error it cannot get past: ``code``, ``message``, ``request_id``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    status: Literal["success", "failed", "timeout", "error"]
    generation_id: str
    task: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    http_status: int | None = None
    last_status: str | None = None
    waited_seconds: float | None = None
    carry: dict[str, Any] = {}

    @classmethod
    def finished(cls, task: GenerationTask) -> GenerationEvent:
        """Describe a task in a terminal status."""
        task_json = task.model_dump(mode="json")
        if task.status == "succeeded":
            return cls(status="success", generation_id=task.id, task=task_json)
        error = task.error
        return cls(
            status="failed",
            generation_id=task.id,
            task=task_json,
            code=error.code if error else "generation_failed",
            message=error.message if error else "the generation failed without details",
        )

    @classmethod
    def from_error(cls, generation_id: str, error: RivyaError) -> GenerationEvent:
        """Describe an error that ended the wait."""
        if isinstance(error, RivyaAPIError):
            return cls(
                status="error",
                generation_id=generation_id,
                code=error.code,
                message=error.message,
                request_id=error.request_id,
                http_status=error.status_code,
            )
        code = INVALID_INPUT if isinstance(error, InvalidInputError) else type(error).__name__
        return cls(status="error", generation_id=generation_id, code=code, message=str(error))

    def result(self) -> GenerationTask:
        """Return the succeeded task, or raise the typed error this event stands for."""
        if self.status == "success" and self.task is not None:
            return GenerationTask.model_validate(self.task)
        if self.status == "failed":
            raise GenerationFailedError(
                task_id=self.generation_id,
                code=self.code or "generation_failed",
                message=self.message or "",
            )
        if self.status == "timeout":
            raise GenerationTimeoutError(
                task_id=self.generation_id,
                last_status=self.last_status or "unknown",
                waited_seconds=self.waited_seconds or 0.0,
            )
        if self.status == "error" and self.http_status is not None and self.code:
            raise error_class_for(self.code, self.http_status)(
                status_code=self.http_status,
                code=self.code,
                message=self.message or "",
                request_id=self.request_id,
            )
        if self.status == "error" and self.code == RivyaTransportError.__name__:
            raise RivyaTransportError(self.message or "")
        if self.status == "error" and self.code == INVALID_INPUT:
            raise InvalidInputError(self.message or "")
        raise UnexpectedResponseError(
            f"waiting for generation {self.generation_id} ended with {self.status}: "
            f"{self.code or 'no code'}: {self.message or 'no message'}"
        )


def read_event(event: Any) -> GenerationEvent:
    """Validate a raw trigger event (as Airflow hands it to ``execute_complete``)."""
    if isinstance(event, GenerationEvent):
        return event
    if not isinstance(event, dict):
        raise UnexpectedResponseError(f"expected a Rivya generation event, got {event!r}")
    try:
        return GenerationEvent.model_validate(event)
    except ValidationError as exc:
        raise UnexpectedResponseError(f"not a Rivya generation event: {event!r}: {exc}") from exc
