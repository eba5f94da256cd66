"""Start settings of one emulator instance."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rivya_provider.emulator.faults import Faults
from rivya_provider.emulator.models import ModelDef
from rivya_provider.emulator.profiles import Profile, profile_of

KEY_PREFIX = "rvya_sk_"


def new_api_key() -> str:
    """Return a fresh key in Rivya's format."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


class EmulatorConfig(BaseModel):
    """How an emulator starts: its key, wallet, task timing, faults and clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The key of the default account; ``None`` makes a new one.
    api_key: str = Field(default_factory=new_api_key)
    #: Start balance of the default account.
    credits: int = Field(default=1000, ge=0)
    #: How long a task stays ``queued``.
    queued_seconds: float = Field(default=0.5, ge=0)
    #: How long a task stays ``processing``.
    processing_seconds: float = Field(default=2.0, ge=0)
    #: Seed of the random faults (``None``: not reproducible).
    seed: int | None = None
    #: The faults active at start and after a reset.
    faults: Faults = Field(default_factory=Faults)
    #: How it answers where the docs are silent: a :class:`Profile`, its fields, or a name of
    #: :data:`PROFILES`.
    profile: Profile = Field(default_factory=Profile)
    #: Models served besides the documented three (same id: replaces the documented one).
    models: tuple[ModelDef, ...] = ()
    #: Seconds since the epoch; tests inject a fake one to move time without sleeping.
    clock: Callable[[], float] = time.time

    @field_validator("profile", mode="before")
    @classmethod
    def _named_profile(cls, value: object) -> object:
        return profile_of(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _generate_missing_key(cls, value: object) -> object:
        return new_api_key() if value is None else value

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("the API key must be non-empty and contain no whitespace")
        return value
