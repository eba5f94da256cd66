"""The parts of one running emulator, wired from its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from starlette.applications import Starlette

from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.faults import FaultInjector
from rivya_provider.emulator.images import ImageCache
from rivya_provider.emulator.state import EmulatorState


@dataclass
class Backend:
    """State, faults and image cache of one emulator; shared by its routes."""

    config: EmulatorConfig
    state: EmulatorState
    faults: FaultInjector
    images: ImageCache

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
        )

    def snapshot(self) -> dict[str, Any]:
        """Describe state and faults for ``GET /_emulator/state``."""
        return {**self.state.snapshot(), "faults": self.faults.current.model_dump()}

    def reset(self) -> None:
        """Forget everything that happened; keep the API keys and return to the start faults."""
        self.state.reset()
        self.faults.reset()
        self.images.clear()


def backend_of(app: Starlette) -> Backend:
    """Return the backend of an app made by :func:`rivya_provider.emulator.create_app`."""
    return cast(Backend, app.state.backend)
