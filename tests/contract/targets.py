"""Every server the contract scenarios run against, behind one small interface.

A target is either the project's emulator in one of its named profiles, or the docs-only server
of :mod:`tests.contract.docs_server` in one of its variants. Scenarios ask a target for its URL and
key, switch its faults, grow its catalogue and read what it created and charged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rivya_provider.emulator import PROFILES, run_emulator
from tests.contract.docs_catalogue import FLEX, MIB
from tests.contract.docs_server import RunningDocsServer, run_docs_server
from tests.contract.docs_state import VARIANTS

#: Fast enough for tests, slow enough that a poller sees a running status.
QUEUED_SECONDS = 0.02
PROCESSING_SECONDS = 0.05
START_CREDITS = 1000

#: ``RIVYA_CONTRACT_TARGETS`` (comma-separated names) narrows the targets: the secondary cells of
#: the CI matrix run the least helpful ones (``emulator:docs-minimal,docs:docs-strict``), the
#: primary cell every one.
_CHOSEN = {n for n in os.environ.get("RIVYA_CONTRACT_TARGETS", "").split(",") if n}
EMULATOR_PROFILES = sorted(PROFILES)
DOCS_VARIANTS = sorted(VARIANTS)
TARGETS = [f"emulator:{name}" for name in EMULATOR_PROFILES]
DOCS_TARGETS = [f"docs:{name}" for name in DOCS_VARIANTS]
if _CHOSEN:
    TARGETS = [t for t in TARGETS if t in _CHOSEN]
    DOCS_TARGETS = [t for t in DOCS_TARGETS if t in _CHOSEN]
TARGETS += DOCS_TARGETS

#: flux-2-flex as Rivya might list it tomorrow: one new optional number param.
FLEX_WITH_SEED: dict[str, Any] = {
    **{k: v for k, v in FLEX.items() if k not in ("supported_modes", "requires_upload_for_modes")},
    "params": [
        *FLEX["params"],
        {"key": "seed", "type": "number", "required": False, "default": None, "min": 0}
        | {"max": 2**31 - 1},
    ],
}
#: A model the client has never heard of, with its own params and file limits.
NEW_MODEL: dict[str, Any] = {
    "id": "rivya-new-image",
    "display_name": "Rivya New Image",
    "base_credits": 3,
    "max_prompt_length": 300,
    "params": [
        {"key": "style", "type": "select", "required": False, "default": "photo"}
        | {"options": ["photo", "sketch", "poster"]},
        {"key": "detail", "type": "number", "required": False, "default": 1, "min": 1, "max": 4},
    ],
    "reference_media": {
        "max_files": 2,
        "kinds": ["image"],
        "limits": [
            {
                "kind": "image",
                "max_bytes": 20 * MIB,
                "mime_types": ["image/jpeg", "image/png", "image/webp", "image/gif"],
            }
        ],
    },
}


@dataclass
class Target:
    """One running server and the switches the scenarios need."""

    name: str
    server: Any
    #: The server answers a same-key repeat with 409 instead of the original task.
    repeat_conflict: bool
    insufficient_status: int

    @property
    def is_docs(self) -> bool:
        return isinstance(self.server, RunningDocsServer)

    @property
    def says_replayed(self) -> bool:
        """The server marks a replayed create with ``Idempotent-Replayed: true`` (the docs do not
        promise it; the emulator's profiles differ)."""
        return not self.is_docs and bool(self.server.profile.replay_header)

    @property
    def base_url(self) -> str:
        return str(self.server.base_url)

    @property
    def api_key(self) -> str:
        return str(self.server.api_key)

    def counters(self) -> dict[str, float]:
        """Return ``tasks_created`` and ``credits_charged``."""
        if self.is_docs:
            return dict(self.server.state.counters())
        counters = self.server.counters()
        return {k: float(counters[k]) for k in ("tasks_created", "credits_charged")}

    def add_key(self, *, status: str = "active", scopes: tuple[str, ...] | None = None) -> str:
        """Create another key of the same account; ``scopes=None`` means all."""
        if self.is_docs:
            return str(self.server.add_key(status=status, **({"scopes": scopes} if scopes else {})))
        return str(self.server.add_key(status=status, scopes=scopes))

    def add_model(self, definition: dict[str, Any]) -> None:
        """Add (or redefine) a model on the server, as the live catalogue grows."""
        self.server.add_model(json.loads(json.dumps(definition)))

    def grow_catalogue(self) -> None:
        """List flux-2-flex with a ``seed`` param and the new model ``rivya-new-image``."""
        self.add_model(FLEX_WITH_SEED)
        self.add_model(NEW_MODEL)

    def set_credits(self, credits: int) -> None:
        if self.is_docs:
            self.server.state.wallet = float(credits)
        else:
            self.server.set_credits(credits)

    def fault(self, name: str, count: int = 1) -> None:
        """Arm a counted fault: fail_next_tasks, cancel_next_tasks, drop_next_creates,
        rate_limited_next, or disabled (503 until :meth:`heal`)."""
        if self.is_docs:
            self.server.set_faults(**{"disabled_next" if name == "disabled" else name: count})
        elif name == "disabled":
            self.server.set_faults(api_disabled=True)
        else:
            self.server.set_faults(**{name: count})

    def heal(self) -> None:
        """Switch every fault off."""
        if self.is_docs:
            self.server.state.faults.clear()
        else:
            self.server.set_faults(api_disabled=False)


@contextmanager
def start_target(name: str) -> Iterator[Target]:
    """Start the target ``emulator:<profile>`` or ``docs:<variant>``; stop it afterwards."""
    family, _, which = name.partition(":")
    if family == "docs":
        variant = VARIANTS[which]
        timing = {"queued_seconds": QUEUED_SECONDS, "processing_seconds": PROCESSING_SECONDS}
        with run_docs_server(variant, **timing) as docs:
            docs.state.wallet = START_CREDITS + (0.5 if variant.fractional_wallet else 0)
            yield Target(name, docs, variant.repeat_conflict, variant.insufficient_status)
        return
    profile = PROFILES[which]
    with run_emulator(
        profile=profile,
        credits=START_CREDITS,
        queued_seconds=QUEUED_SECONDS,
        processing_seconds=PROCESSING_SECONDS,
    ) as emulator:
        yield Target(
            name,
            emulator,
            repeat_conflict=profile.repeat == "conflict",
            insufficient_status=profile.insufficient_credits_status,
        )
