"""The public API under ``/api/v1``: models, generations, credits and files.

The answers follow the backend's current :class:`~rivya_provider.emulator.profiles.Profile`
wherever the docs leave a choice open.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from rivya_provider.emulator.backend import Backend
from rivya_provider.emulator.errors import ApiError, context_of, not_found
from rivya_provider.emulator.images import image_spec
from rivya_provider.emulator.openapi import IDEMPOTENCY_HEADER, UPLOAD_BODY
from rivya_provider.emulator.pipeline import API_PREFIX, public_checks, require
from rivya_provider.emulator.profiles import Profile
from rivya_provider.emulator.records import ApiKey, NewTask, StoredFile, fingerprint
from rivya_provider.emulator.rules import check_idempotency_key, parse_generation
from rivya_provider.emulator.schemas import (
    CreditBalance,
    ErrorEnvelope,
    GenerationBody,
    ModelCatalogue,
    PublicApiFile,
    Task,
)
from rivya_provider.emulator.uploads import check_upload

_ERROR: dict[str, Any] = {"model": ErrorEnvelope}
_SHORT_TASK_FIELDS = ("id", "status", "model", "reserved_credits", "result", "error")
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
    """Build the ``/api/v1`` routes of ``backend``.

    The prefix sits on the router itself, so each route's path (and the request counter key made
    from it, such as ``"GET /api/v1/credits"``) is the full path.
    """
    router = APIRouter(prefix=API_PREFIX)
    state = backend.state

    @router.get(
        "/models",
        summary="List the model catalogue",
        response_model=ModelCatalogue,
        responses={429: _ERROR, 503: _ERROR},
        dependencies=[Depends(public_checks)],
    )
    async def list_models() -> JSONResponse:
        objects = backend.profile.param_options == "objects"
        data = [m.to_wire(option_objects=objects) for m in backend.catalogue.all()]
        return JSONResponse({"object": "list", "data": data})

    @router.post(
        "/generations",
        summary="Submit an async generation task",
        status_code=201,
        response_model=Task,
        responses={**_AUTH_ERRORS, 400: _ERROR, 402: _ERROR, 409: _ERROR},
        openapi_extra={
            "parameters": [IDEMPOTENCY_HEADER],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": GenerationBody.model_json_schema()}},
            },
        },
    )
    async def create_generation(
        request: Request,
        key: CreateKey,
    ) -> JSONResponse:
        profile = backend.profile
        idempotency_key = check_idempotency_key(request.headers.get("Idempotency-Key"))
        parsed = parse_generation(
            await request.body(), catalogue=backend.catalogue, file_kind=state.uploaded_kind
        )
        image = image_spec(model=parsed.model, params=parsed.params)
        results = f"{_base_url(request)}/cdn/results"
        new = NewTask(
            model=parsed.model.id,
            prompt=parsed.prompt,
            params=parsed.params,
            cost=parsed.model.base_credits,
            fate=backend.faults.task_fate,
            result_url=lambda task_id: f"{results}/{task_id}/0.{image.extension}",
            image=image,
        )
        outcome = state.begin_create(
            account=key.account,
            key=idempotency_key,
            body_hash=fingerprint(parsed.body),
            new=new,
            replay=profile.repeat == "replay",
        )
        if outcome.outcome == "replayed":
            assert outcome.task is not None
            headers = {"Idempotent-Replayed": "true"} if profile.replay_header else None
            return _task_answer(outcome.task.to_wire(profile), profile, headers=headers)
        if outcome.outcome in ("conflict", "in_flight"):
            raise _idempotency_conflict(
                in_flight=outcome.outcome == "in_flight",
                retry_after=profile.in_flight_retry_after,
            )
        if outcome.outcome == "insufficient":
            raise ApiError(
                status=profile.insufficient_credits_status,
                code="insufficient_credits",
                message=f"{parsed.model.id} needs {new.cost} credits; "
                f"the balance is {outcome.balance}",
            )
        assert outcome.task is not None
        try:
            delay = backend.faults.current.create_delay_seconds
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            state.finish_create(account=key.account, key=idempotency_key)
        if backend.faults.drop_create():
            context_of(request.scope).drop_response = True
            state.count("dropped_responses")
        return _task_answer(outcome.task.to_wire(profile), profile)

    @router.get(
        "/generations/{taskId}",
        summary="Get a task's status and result",
        response_model=Task,
        responses={**_AUTH_ERRORS, 404: _ERROR},
    )
    async def get_generation(
        taskId: str,  # noqa: N803 - the documented path parameter name
        key: ReadKey,
    ) -> JSONResponse:
        task = state.get_task(account=key.account, task_id=taskId)
        if task is None:
            raise not_found(f"no generation task {taskId!r} in this account")
        return JSONResponse(task.to_wire(backend.profile))

    @router.get(
        "/credits",
        summary="Get the credit balance",
        response_model=CreditBalance,
        responses=_AUTH_ERRORS,
    )
    async def get_credits(
        key: CreditsKey,
    ) -> JSONResponse:
        return JSONResponse({"current_credits": state.balance(key.account)})

    @router.post(
        "/files",
        summary="Upload a reference file (multipart: file, kind, model?, client_request_id?)",
        response_model=PublicApiFile,
        responses={**_AUTH_ERRORS, 400: _ERROR},
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def upload_file(
        request: Request,
        key: UploadKey,
    ) -> JSONResponse:
        async with request.form(max_files=1) as form:
            upload = await check_upload(form, catalogue=backend.catalogue)
        file_id = "file_" + secrets.token_hex(12)
        stored = StoredFile(
            id=file_id,
            account=key.account,
            kind=upload.kind,
            mime_type=upload.mime_type,
            name=upload.name,
            safe_name=upload.safe_name,
            model=upload.model,
            data=upload.data,
            created_at=state.clock(),
            url=f"{_base_url(request)}/cdn/files/{file_id}/{upload.safe_name}",
            duration_token=upload.duration_token,
        )
        state.add_file(stored)
        profile = backend.profile
        return JSONResponse(stored.to_wire(profile), status_code=profile.upload_status)

    @router.get(
        "/files/{fileId}",
        summary="Get an uploaded file's metadata",
        response_model=PublicApiFile,
        responses={**_AUTH_ERRORS, 404: _ERROR},
    )
    async def get_file(
        fileId: str,  # noqa: N803 - the documented path parameter name
        key: FileReadKey,
    ) -> JSONResponse:
        stored = state.get_file(file_id=fileId, account=key.account)
        if stored is None:
            raise not_found(f"no file {fileId!r} in this account")
        return JSONResponse(stored.to_wire(backend.profile))

    return router


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _task_answer(
    task: dict[str, Any], profile: Profile, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    short = profile.create_shape == "short"
    body = {k: task[k] for k in _SHORT_TASK_FIELDS} if short else task
    return JSONResponse(body, status_code=profile.create_status, headers=headers)


def _idempotency_conflict(*, in_flight: bool, retry_after: bool) -> ApiError:
    if in_flight:
        # The docs promise no Retry-After here; one profile sends it to prove clients use it.
        return ApiError(
            status=409,
            code="idempotency_conflict",
            message="a request with this Idempotency-Key is still in progress; retry shortly",
            retry_after=1 if retry_after else None,
        )
    return ApiError(
        status=409,
        code="idempotency_conflict",
        message="this Idempotency-Key was already used with another request body, or its task "
        "was already answered",
    )
