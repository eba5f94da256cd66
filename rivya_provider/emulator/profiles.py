"""Profiles: the emulator's answer to each point Rivya's docs leave open.

The default profile is the project's decision (rivya-api.md section 9); every other value is a
plausible answer a real server could give, so tests can prove a client copes with each of them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Profile(BaseModel):
    """How the emulator answers where the docs are silent; the defaults are the project's choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Success status of ``POST /api/v1/generations`` (and of its replays).
    create_status: Literal[200, 201] = 201
    #: ``full`` task, or the docs' shorter ``id, status, model, reserved_credits, result, error``.
    create_shape: Literal["full", "short"] = "full"
    #: Send ``Idempotent-Replayed: true`` on a replay.
    replay_header: bool = True
    #: Same key and same body after the first was answered: replay it, or answer 409.
    repeat: Literal["replay", "conflict"] = "replay"
    #: Send ``Retry-After`` with the 409 for a key whose first request is still in flight.
    in_flight_retry_after: bool = False
    #: HTTP status of ``insufficient_credits``.
    insufficient_credits_status: Literal[402, 403] = 402
    #: A status beyond the documented four, reported instead of ``processing``.
    unknown_status: str | None = None
    #: Field spelling of the file object.
    file_fields: Literal["snake", "camel", "minimal"] = "snake"
    #: Param options in ``/models`` as plain strings or as ``{"value", "label"}`` objects.
    param_options: Literal["strings", "objects"] = "strings"
    #: Success status of ``POST /api/v1/files``.
    upload_status: Literal[200, 201] = 200

    def changed(self, **fields: Any) -> Profile:
        """Return a copy with ``fields`` changed (validated like a new profile).

        :param fields: :class:`Profile` field names and values.
        :raises pydantic.ValidationError: on an unknown field or a bad value.
        """
        return Profile.model_validate({**self.model_dump(), **fields})


_DOCS_MINIMAL = Profile(
    create_status=200,
    create_shape="short",
    replay_header=False,
    repeat="conflict",
    insufficient_credits_status=403,
    unknown_status="rendering",
    file_fields="minimal",
    param_options="objects",
)

#: Named profiles: the default and one per open point, plus all of the docs' minimum at once.
PROFILES: dict[str, Profile] = {
    "default": Profile(),
    "create-200": Profile(create_status=200),
    "short-create": Profile(create_shape="short"),
    "no-replay-header": Profile(replay_header=False),
    "repeat-conflict": Profile(repeat="conflict"),
    "in-flight-retry-after": Profile(in_flight_retry_after=True),
    "credits-403": Profile(insufficient_credits_status=403),
    "unknown-status": Profile(unknown_status="rendering"),
    "camel-files": Profile(file_fields="camel"),
    "minimal-files": Profile(file_fields="minimal"),
    "object-options": Profile(param_options="objects"),
    "upload-201": Profile(upload_status=201),
    "docs-minimal": _DOCS_MINIMAL,
}


def profile_of(value: object) -> object:
    """Turn a profile name into its :class:`Profile`; pass anything else through for pydantic."""
    if isinstance(value, str):
        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r}; known: {', '.join(PROFILES)}")
        return PROFILES[value]
    return value
