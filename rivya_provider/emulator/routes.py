"""The public API under ``/api/v1``: models, generations, credits and files."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from rivya_provider.client.catalog import CATALOG
from rivya_provider.client.models import (
    Credits,
    ErrorEnvelope,
    GenerationRequest,
    GenerationTask,
    ModelList,
    RivyaFile,
)
from rivya_provider.emulator.backend import Backend
from rivya_provider.emulator.errors import ApiError, context_of, not_found
from rivya_provider.emulator.images import image_spec
from rivya_provider.emulator.openapi import IDEMPOTENCY_HEADER, UPLOAD_BODY
from rivya_provider.emulator.pipeline import public_checks, require
from rivya_provider.emulator.records import ApiKey, NewTask, StoredFile, fingerprint
from rivya_provider.emulator.validation import (
    check_idempotency_key,
    check_upload,
    parse_generation,
)

_ERROR: dict[str, Any] = {"model": ErrorEnvelope}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _ERROR,
    403: _ERROR,
    429: _ERROR,
    503: _ERROR,
}

# Module-level aliases: FastAPI resolves these annotations from the module's globals.
CreateKey = Annotated[ApiKey, Depends(require("generations:create"))]
ReadKey = Annotated[ApiKey, Depends(require("generations:read"))]
CreditsKey = Annotated[ApiKey, Depends(require("credits:read"))]
UploadKey = Annotated[ApiKey, Depends(require("files:create"))]
FileReadKey = Annotated[ApiKey, Depends(require("files:read"))]


def public_router(backend: Backend) -> APIRouter:
    """Build the ``/api/v1`` routes of ``backend`` (mounted under that prefix)."""
    router = APIRouter()
    state = backend.state

    @router.get(
        "/models",
        summary="List the model catalogue",
        response_model=ModelList,
        responses={429: _ERROR, 503: _ERROR},
        dependencies=[Depends(public_checks)],
    )
    async def list_models() -> JSONResponse:
        data = []
        for spec in CATALOG.values():
            entry = spec.to_model_info().model_dump(mode="json")
            data.append({**entry, "max_reference_images": spec.max_reference_images})
        return JSONResponse({"object": "list", "data": data})

    @router.post(
        "/generations",
        summary="Submit an async generation task",
        status_code=201,
        response_model=GenerationTask,
        responses={**_AUTH_ERRORS, 400: _ERROR, 402: _ERROR, 409: _ERROR},
        openapi_extra={
            "parameters": [IDEMPOTENCY_HEADER],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": GenerationRequest.model_json_schema()}},
            },
        },
    )
    async def create_generation(
        request: Request,
        key: CreateKey,
    ) -> JSONResponse:
        idempotency_key = check_idempotency_key(request.headers.get("Idempotency-Key"))
        parsed = parse_generation(await request.body())
        image = image_spec(model=parsed.spec.id, params=parsed.request.params)
        results = f"{_base_url(request)}/cdn/results"
        new = NewTask(
            model=parsed.spec.id,
            prompt=parsed.request.prompt or "",
            params=parsed.request.params,
            cost=int(parsed.spec.base_credits or 0),
            fate=backend.faults.task_fate,
            result_url=lambda task_id: f"{results}/{task_id}/0.{image.extension}",
        )
        outcome = state.begin_create(
            account=key.account, key=idempotency_key, body_hash=fingerprint(parsed.body), new=new
        )
        if outcome.outcome == "replayed":
            return JSONResponse(
                outcome.task, status_code=201, headers={"Idempotent-Replayed": "true"}
            )
        if outcome.outcome in ("conflict", "in_flight"):
            raise _idempotency_conflict(in_flight=outcome.outcome == "in_flight")
        if outcome.outcome == "insufficient":
            raise ApiError(
                status=402,
                code="insufficient_credits",
                message=f"{parsed.spec.id} needs {new.cost} credits; "
                f"the balance is {outcome.balance}",
            )
        try:
            delay = backend.faults.current.create_delay_seconds
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            state.finish_create(account=key.account, key=idempotency_key)
        if backend.faults.drop_create():
            context_of(request.scope).drop_response = True
            state.count("dropped_responses")
        return JSONResponse(outcome.task, status_code=201)

    @router.get(
        "/generations/{taskId}",
        summary="Get a task's status and result",
        response_model=GenerationTask,
        responses={**_AUTH_ERRORS, 404: _ERROR},
    )
    async def get_generation(
        taskId: str,  # noqa: N803 - the documented path parameter name
        key: ReadKey,
    ) -> JSONResponse:
        task = state.get_task(account=key.account, task_id=taskId)
        if task is None:
            raise not_found(f"no generation task {taskId!r} in this account")
        return JSONResponse(task)

    @router.get(
        "/credits",
        summary="Get the credit balance",
        response_model=Credits,
        responses=_AUTH_ERRORS,
    )
    async def get_credits(
        key: CreditsKey,
    ) -> JSONResponse:
        return JSONResponse({"current_credits": state.balance(key.account)})

    @router.post(
        "/files",
        summary="Upload a reference file (multipart: file, kind, model?, client_request_id?)",
        response_model=RivyaFile,
        responses={**_AUTH_ERRORS, 400: _ERROR},
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def upload_file(
        request: Request,
        key: UploadKey,
    ) -> JSONResponse:
        async with request.form(max_files=1) as form:
            upload = await check_upload(form)
        file_id = "file_" + secrets.token_hex(12)
        stored = StoredFile(
            id=file_id,
            account=key.account,
            kind=str(upload.kind),
            mime_type=upload.mime_type,
            name=upload.name,
            safe_name=upload.safe_name,
            model=upload.model,
            data=upload.data,
            created_at=state.clock(),
            url=f"{_base_url(request)}/cdn/files/{file_id}/{upload.safe_name}",
            duration_token=upload.duration_token,
        )
        return JSONResponse(state.add_file(stored))

    @router.get(
        "/files/{fileId}",
        summary="Get an uploaded file's metadata",
        response_model=RivyaFile,
        responses={**_AUTH_ERRORS, 404: _ERROR},
    )
    async def get_file(
        fileId: str,  # noqa: N803 - the documented path parameter name
        key: FileReadKey,
    ) -> JSONResponse:
        stored = state.get_file(file_id=fileId, account=key.account)
        if stored is None:
            raise not_found(f"no file {fileId!r} in this account")
        return JSONResponse(stored.to_wire())

    return router


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _idempotency_conflict(*, in_flight: bool) -> ApiError:
    if in_flight:
        # Retry-After marks the one conflict a client may retry: the first request may still end.
        return ApiError(
            status=409,
            code="idempotency_conflict",
            message="a request with this Idempotency-Key is still in progress; retry shortly",
            retry_after=1,
        )
    return ApiError(
        status=409,
        code="idempotency_conflict",
        message="this Idempotency-Key was already used with a different request body",
    )
