"""Test-only routes under ``/_emulator``: state, counters, faults, profile, models, credits, keys.

They need no key because the emulator listens on loopback, and they stay out of the OpenAPI
document and of the request counters so they never disturb what a test measures.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rivya_provider.emulator.backend import Backend
from rivya_provider.emulator.errors import ApiError, validation_failed
from rivya_provider.emulator.records import KeyStatus
from rivya_provider.emulator.state import DEFAULT_ACCOUNT

ADMIN_PREFIX = "/_emulator"


class CreditsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credits: int = Field(ge=0)
    account: str = DEFAULT_ACCOUNT


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[str] | None = None
    status: KeyStatus = KeyStatus.ACTIVE
    account: str | None = None
    credits: int | None = Field(default=None, ge=0)


def admin_router(backend: Backend) -> APIRouter:
    """Build the ``/_emulator`` routes of ``backend`` (mounted under that prefix)."""
    router = APIRouter()

    @router.get("/state")
    async def read_state() -> dict[str, Any]:
        return backend.snapshot()

    @router.get("/counters")
    async def read_counters() -> dict[str, Any]:
        return backend.state.counters()

    @router.patch("/faults")
    async def update_faults(fields: dict[str, Any]) -> dict[str, Any]:
        try:
            return backend.faults.update(**fields).model_dump()
        except ValidationError as exc:
            raise _refused(exc) from None

    @router.patch("/profile")
    async def update_profile(fields: dict[str, Any]) -> dict[str, Any]:
        # "name" starts from a named profile; the other fields change it.
        name = fields.pop("name", None)
        try:
            return backend.set_profile(name, **fields).model_dump()
        except ValidationError as exc:
            raise _refused(exc) from None
        except ValueError as exc:
            raise validation_failed(f"name: {exc}") from None

    @router.post("/models", status_code=201)
    async def add_model(definition: dict[str, Any]) -> dict[str, Any]:
        try:
            model = backend.catalogue.add(definition)
        except ValidationError as exc:
            raise _refused(exc) from None
        return model.to_wire(option_objects=backend.profile.param_options == "objects")

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        backend.reset()
        return backend.snapshot()

    @router.put("/credits")
    async def set_credits(update: CreditsUpdate) -> dict[str, Any]:
        backend.state.set_credits(update.credits, account=update.account)
        return {"account": update.account, "current_credits": update.credits}

    @router.post("/keys", status_code=201)
    async def add_key(new: NewKey) -> dict[str, str]:
        key = backend.state.add_key(
            scopes=new.scopes, status=new.status, account=new.account, credits=new.credits
        )
        return {"api_key": key.key, "account": key.account}

    return router


def _refused(exc: ValidationError) -> ApiError:
    problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
    return validation_failed("; ".join(problems))
