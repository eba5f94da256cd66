"""The parts of one running emulator, wired from its config."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.applications import Starlette

from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.faults import FaultInjector
from rivya_provider.emulator.images import ImageCache
from rivya_provider.emulator.models import DOCUMENTED_MODELS, Catalogue
from rivya_provider.emulator.profiles import Profile, profile_of
from rivya_provider.emulator.state import EmulatorState


@dataclass
class Backend:
    """State, faults, profile, models and image cache of one emulator; shared by its routes."""

    config: EmulatorConfig
    state: EmulatorState
    faults: FaultInjector
    images: ImageCache
    catalogue: Catalogue
    profile: Profile
    _profile_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Backend:
        """Build the parts ``config`` describes."""
        return cls(
            config=config,
            state=EmulatorState(
                api_key=config.api_key,
                credits=config.credits,
                queued_seconds=config.queued_seconds,
                processing_seconds=config.processing_seconds,
                clock=config.clock,
            ),
            faults=FaultInjector(faults=config.faults, seed=config.seed, clock=config.clock),
            images=ImageCache(),
            catalogue=Catalogue((*DOCUMENTED_MODELS, *config.models)),
            profile=config.profile,
        )

    def set_profile(self, name: str | None = None, **fields: Any) -> Profile:
        """Change the profile: start from a named one (or the current), change ``fields``.

        :param name: a name of :data:`PROFILES` to start from, ``None`` for the current profile.
        :param fields: :class:`Profile` field names and values.
        :raises ValueError: on an unknown name; pydantic's on a bad field.
        """
        with self._profile_lock:
            base = self.profile if name is None else profile_of(name)
            assert isinstance(base, Profile)
            self.profile = base.changed(**fields)
            return self.profile

    def snapshot(self) -> dict[str, Any]:
        """Describe state, faults, profile and models for ``GET /_emulator/state``."""
        return {
            **self.state.snapshot(),
            "faults": self.faults.current.model_dump(),
            "profile": self.profile.model_dump(),
            "models": self.catalogue.ids(),
        }

    def reset(self) -> None:
        """Forget what happened and return to the start faults, profile and models (keys stay)."""
        self.state.reset()
        self.faults.reset()
        self.images.clear()
        self.catalogue.reset()
        with self._profile_lock:
            self.profile = self.config.profile


def backend_of(app: Starlette) -> Backend:
    """Return the backend of an app made by :func:`rivya_provider.emulator.create_app`."""
    return cast(Backend, app.state.backend)
