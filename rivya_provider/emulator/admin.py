"""Test-only routes under ``/_emulator``: read state and counters, set faults, credits and keys.

They need no key because the emulator listens on loopback, and they stay out of the OpenAPI
document and of the request counters so they never disturb what a test measures.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rivya_provider.emulator.backend import Backend
from rivya_provider.emulator.errors import validation_failed
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
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise validation_failed("; ".join(problems)) from None

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
