"""A local, in-memory Rivya Public API v1 for tests, demos and offline DAG runs ("moto for Rivya").

Needs the ``emulator`` extra (FastAPI, uvicorn, python-multipart, Pillow).
"""

from __future__ import annotations

from rivya_provider.emulator.app import create_app
from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.faults import Faults
from rivya_provider.emulator.models import DOCUMENTED_MODELS, ModelDef
from rivya_provider.emulator.profiles import PROFILES, Profile
from rivya_provider.emulator.server import RunningEmulator, run_emulator

__all__ = [
    "DOCUMENTED_MODELS",
    "PROFILES",
    "EmulatorConfig",
    "Faults",
    "ModelDef",
    "Profile",
    "RunningEmulator",
    "create_app",
    "run_emulator",
]
