"""Number bounds that ``/models`` gives in another shape still bound the value, before any create.

rivya-api.md leaves the shape of a number param's bounds open (the emulator says ``min`` /
``max``). Rivya may say ``minimum`` / ``maximum``, a ``range`` object or pair, or
``min_value`` / ``max_value``: each must check ``safetyTolerance`` (0 to 6 for
``flux-kontext-pro``) locally, so a value out of range costs nothing and sends no create.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from rivya_provider.client import (
    AsyncRivyaClient,
    GenerationRequest,
    RequestValidationError,
    RetryPolicy,
    RivyaClient,
)
from tests.hostile import HostileServer, Seen, response

pytestmark = pytest.mark.no_airflow

KEY = "rvya_sk_catalog_bounds_0123456789"

#: Each shape of the bounds 0 to 6, by name.
BOUNDS: dict[str, dict[str, Any]] = {
    "min-max": {"min": 0, "max": 6},  # the emulator's shape
    "minimum-maximum": {"minimum": 0, "maximum": 6},
    "range-min-max": {"range": {"min": 0, "max": 6}},
    "range-minimum-maximum": {"range": {"minimum": 0, "maximum": 6}},
    "range-pair": {"range": [0, 6]},
    "min_value-max_value": {"min_value": 0, "max_value": 6},
}


def select(key: str, default: str, options: list[str]) -> dict[str, Any]:
    return {"key": key, "type": "select", "required": False, "default": default, "options": options}


def catalogue(bounds: dict[str, Any]) -> dict[str, Any]:
    """``/models`` listing ``flux-kontext-pro`` with its documented params."""
    tolerance = {"key": "safetyTolerance", "type": "number", "required": False, "default": 2}
    model = {
        "id": "flux-kontext-pro",
        "display_name": "Flux Kontext Pro",
        "category": "image",
        "base_credits": 4,
        "billing_type": "FIXED",
        "api_status": "available",
        "supported_api_inputs": ["text", "file"],
        "params": [
            select("aspectRatio", "16:9", ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"]),
            select("outputFormat", "jpeg", ["jpeg", "png"]),
            select("enableTranslation", "true", ["true", "false"]),
            select("promptUpsampling", "false", ["false", "true"]),
            {**tolerance, **bounds},
            {"key": "watermark", "type": "text", "required": False, "default": None},
        ],
    }
    return {"object": "list", "data": [model]}


def rivya(bounds: dict[str, Any]) -> Any:
    """A script answering ``/models`` with ``bounds`` and any create with a new task."""
    task = {"id": "task_1", "status": "queued", "model": "flux-kontext-pro", "reserved_credits": 4}

    async def script(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.method == "GET" and seen.path == "/api/v1/models":
            writer.write(response(200, catalogue(bounds)))
        elif seen.method == "POST" and seen.path == "/api/v1/generations":
            writer.write(response(201, task))
        else:
            error = {"code": "not_found", "message": "no such thing", "requestId": "req_1"}
            writer.write(response(404, {"error": error}))
        await writer.drain()

    return script


@pytest.fixture(params=list(BOUNDS.values()), ids=list(BOUNDS))
def server(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    """A new server (a new base URL, so a catalogue of its own) per shape of the bounds."""
    with HostileServer(script=rivya(request.param)).running() as running:
        yield running


REQUEST = GenerationRequest(model="flux-kontext-pro", prompt="p", params={"safetyTolerance": 7})


async def create(server: HostileServer, flavour: str) -> Any:
    retry = RetryPolicy(max_attempts=1)
    if flavour == "async":
        async with AsyncRivyaClient(api_key=KEY, base_url=server.base_url, retry=retry) as aclient:
            return await aclient.acreate_generation(REQUEST)
    with RivyaClient(api_key=KEY, base_url=server.base_url, retry=retry) as client:
        return client.create_generation(REQUEST)


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_value_beyond_the_listed_bounds_is_refused_before_the_create(
    server: HostileServer, flavour: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        await create(server, flavour)
    assert "params.safetyTolerance" in caught.value.fields
    assert "0 to 6" in str(caught.value)
    sent = [f"{seen.method} {seen.path}" for seen in server.seen]
    assert "POST /api/v1/generations" not in sent
    assert sent == ["GET /api/v1/models"], "the bounds came from Rivya's catalogue"
