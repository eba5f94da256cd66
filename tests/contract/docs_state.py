"""State and rules of the docs-only Rivya server: variants, wallet, tasks, validation.

Written from the public docs (and this project's notes on what they leave open) only; nothing
here comes from the emulator or the client.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from tests.contract.docs_catalogue import DOCUMENTED_MODELS

ALL_SCOPES = (
    "models:read",
    "generations:create",
    "generations:read",
    "files:create",
    "files:read",
    "credits:read",
)
DEFAULT_LIMITS = {"image": (10 * 1024 * 1024, ("image/jpeg", "image/png", "image/webp"))}


@dataclass(frozen=True)
class DocsVariant:
    """One plausible reading of what the docs leave open."""

    name: str
    create_status: int = 201
    #: The developers page's create answer: id, status, model, reserved_credits, result, error.
    short_create: bool = False
    #: Send created_at/updated_at on tasks and files.
    timestamps: bool = True
    #: Answer a same-key, same-body repeat with 409 instead of the original task.
    repeat_conflict: bool = False
    #: What a running task reports instead of "processing".
    running_status: str = "processing"
    insufficient_status: int = 402
    option_objects: bool = False
    #: How an uploaded file names its id.
    file_id_field: str = "id"
    upload_status: int = 200
    #: The wallet holds a fraction of a credit too.
    fractional_wallet: bool = False
    #: A succeeded task's result names ``primary_url`` besides ``urls``.
    primary_url: bool = True


VARIANTS = {
    v.name: v
    for v in (
        DocsVariant(name="docs-full-201"),
        DocsVariant(
            name="docs-short-200",
            create_status=200,
            short_create=True,
            timestamps=False,
            option_objects=True,
            upload_status=201,
            primary_url=False,
        ),
        DocsVariant(
            name="docs-strict",
            repeat_conflict=True,
            running_status="rendering",
            insufficient_status=403,
            file_id_field="file_id",
            fractional_wallet=True,
            short_create=True,
        ),
    )
}


class DocsError(Exception):
    """An answer in the documented error envelope."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


@dataclass
class Task:
    id: str
    model: str
    cost: float
    created: float
    fate: str  # succeeded, failed or canceled
    body: dict[str, Any]


@dataclass
class DocsState:
    """Everything the server remembers; tests read the counters."""

    variant: DocsVariant
    queued_seconds: float
    processing_seconds: float
    api_key: str = field(default_factory=lambda: "rvya_sk_" + secrets.token_urlsafe(18))
    wallet: float = 1000.0
    keys: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, str]] = field(default_factory=dict)
    replays: int = 0
    #: Faults: counted down as they are used.
    faults: dict[str, int] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.keys[self.api_key] = ("active", ALL_SCOPES)
        if self.variant.fractional_wallet:
            self.wallet += 0.5
        self.models = {m["id"]: m for m in DOCUMENTED_MODELS}

    def take_fault(self, name: str) -> bool:
        with self.lock:
            if self.faults.get(name, 0) <= 0:
                return False
            self.faults[name] -= 1
            return True

    def status_of(self, task: Task) -> str:
        age = time.monotonic() - task.created
        if age < self.queued_seconds:
            return "queued"
        if age < self.queued_seconds + self.processing_seconds:
            return self.variant.running_status
        return task.fate

    def counters(self) -> dict[str, float]:
        """Tasks created, credits kept (reserved or charged) and replays answered."""
        charged = sum(t.cost for t in self.tasks.values() if t.fate == "succeeded")
        return {"tasks_created": len(self.tasks), "credits_charged": charged}


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


RESULT_PNG = png_bytes()


def stamp(seconds: float) -> str:
    wall = time.time() - (time.monotonic() - seconds)
    millis = int(wall * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{millis:03d}Z"


def number(value: float) -> float | int:
    return int(value) if value == int(value) else value


def task_json(state: DocsState, task: Task, base: str, *, short: bool = False) -> dict[str, Any]:
    status = state.status_of(task)
    done = status == "succeeded"
    urls = [f"{base}/results/{task.id}/{n}.png" for n in range(2)]
    result: dict[str, Any] = {"urls": urls}
    if state.variant.primary_url:
        result["primary_url"] = urls[0]
    body: dict[str, Any] = {
        "id": task.id,
        "status": status,
        "model": task.model,
        "reserved_credits": number(task.cost),
        "result": result if done else None,
        "error": {"code": "generation_failed", "message": "the model gave up"}
        if status == "failed"
        else None,
    }
    if short:
        return body
    body["final_credits"] = number(task.cost) if done else 0
    if state.variant.timestamps:
        body["created_at"] = body["updated_at"] = stamp(task.created)
    return body


def check_key(state: DocsState, header: str, scope: str) -> None:
    """Authenticate an ``Authorization`` header for ``scope``; then apply the request faults."""
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise DocsError(401, "api_key_missing", "send Authorization: Bearer rvya_sk_...")
    key = state.keys.get(header[7:].strip())
    if key is None:
        raise DocsError(401, "api_key_invalid", "this API key is not recognised")
    if key[0] != "active":
        raise DocsError(401, f"api_key_{key[0]}", f"this API key is {key[0]}")
    if scope not in key[1]:
        raise DocsError(403, "api_scope_denied", f"this API key lacks the {scope} scope")
    if state.take_fault("rate_limited_next"):
        raise DocsError(429, "rate_limited", "slow down", retry_after=1)
    if state.take_fault("disabled_next"):
        raise DocsError(503, "public_api_disabled", "the Public API is off", retry_after=1)
    if state.take_fault("server_errors_next"):
        # New codes may appear, or none at all: an error envelope with a message only.
        raise DocsError(500, "", "something broke")


def invalid(message: str) -> DocsError:
    return DocsError(400, "validation_failed", message)


def check_params(model: dict[str, Any], params: Any) -> None:
    if not isinstance(params, dict):
        raise invalid("params must be an object")
    known = {p["key"]: p for p in model["params"]}
    for key, value in params.items():
        if key == "referenceMediaItems":
            continue
        spec = known.get(key)
        if spec is None:
            raise invalid(f"params.{key} is not a parameter of {model['id']}")
        if spec["type"] == "select" and value not in spec["options"]:
            raise invalid(f"params.{key} must be one of {spec['options']}")
        if spec["type"] == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(f"params.{key} must be a number")
            if not spec.get("min", value) <= value <= spec.get("max", value):
                raise invalid(f"params.{key} is out of range")
        if spec["type"] == "text" and not isinstance(value, str):
            raise invalid(f"params.{key} must be text")


def check_references(state: DocsState, model: dict[str, Any], items: Any) -> None:
    if items is None:
        return
    media = model.get("reference_media")
    if not isinstance(items, list) or media is None or len(items) > media["max_files"]:
        raise invalid(f"params.referenceMediaItems: at most {media and media['max_files']} items")
    urls = {f["url"] for f in state.files.values()}
    for item in items:
        if not isinstance(item, dict) or item.get("url") not in urls or "kind" not in item:
            raise invalid("params.referenceMediaItems: upload each file with the Files API first")


def check_generation(state: DocsState, body: Any) -> tuple[dict[str, Any], float]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise invalid("model is required")
    model = state.models.get(body["model"])
    if model is None or model.get("api_status", "available") != "available":
        raise invalid(f"model {body['model']!r} is not available through the API")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt is required")
    limit = model.get("max_prompt_length")
    if limit is not None and len(prompt) > limit:
        raise invalid(f"prompt is longer than {limit} characters")
    check_params(model, body.get("params", {}))
    check_references(state, model, body.get("params", {}).get("referenceMediaItems"))
    return model, float(model["base_credits"])


def limits_for(state: DocsState, kind: str, model_id: Any) -> tuple[int, tuple[str, ...]]:
    if not isinstance(model_id, str):
        default = DEFAULT_LIMITS.get(kind)
        if default is None:
            raise invalid(f"kind {kind} is not accepted here")
        return default
    model = state.models.get(model_id)
    media = model and model["reference_media"]
    if not media or kind not in media["kinds"]:
        raise invalid(f"model {model_id!r} does not accept {kind} files")
    limit = next(x for x in media["limits"] if x["kind"] == kind)
    return int(limit["max_bytes"]), tuple(limit["mime_types"])
