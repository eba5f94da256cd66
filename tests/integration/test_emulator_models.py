"""Models added at run time: listed, validated, charged, uploaded and drawn by their definition."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pydantic
import pytest
from PIL import Image

from rivya_provider.emulator import ModelDef, RunningEmulator
from tests.emulator_fixtures import EmulatorFactory
from tests.integration.emulator_support import error_of, wait_for_status
from tests.integration.test_emulator_files import MP4
from tests.media import image_bytes

CREATE = "/api/v1/generations"

#: A model the docs do not know: its own params, credits and file limits.
SKETCH: dict[str, Any] = {
    "id": "sketch-1",
    "display_name": "Sketch 1",
    "base_credits": 3,
    "max_prompt_length": 20,
    "params": [
        {"key": "aspectRatio", "type": "select", "default": "2:1", "options": ["2:1", "auto"]},
        {"key": "steps", "type": "number", "required": True, "min": 1, "max": 50},
        {"key": "style", "type": "text"},
    ],
    "reference_media": {
        "max_files": 2,
        "kinds": ["image", "video"],
        "limits": [{"kind": "image", "max_bytes": 2000, "mime_types": ["image/png"]}],
    },
}


def _models(emulator: RunningEmulator) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{emulator.base_url}/api/v1/models").json()
    return {m["id"]: m for m in body["data"]}


def test_an_added_model_is_listed_with_every_field(reused_emulator: RunningEmulator) -> None:
    entry = reused_emulator.add_model(SKETCH)
    listed = _models(reused_emulator)["sketch-1"]
    assert listed == entry
    assert listed["base_credits"] == 3
    assert listed["runtime"] == "async_task"
    assert listed["supported_api_inputs"] == ["text", "file"]
    assert listed["file_kinds"] == ["image", "video"]
    assert listed["params"][1] == {
        "key": "steps",
        "type": "number",
        "required": True,
        "default": None,
        "min": 1,
        "max": 50,
    }
    limits = {limit["kind"]: limit for limit in listed["reference_media"]["limits"]}
    assert limits["image"] == {"kind": "image", "max_bytes": 2000, "mime_types": ["image/png"]}
    # A kind without its own limit gets the Files API default.
    assert limits["video"]["max_bytes"] == 50 * 1024 * 1024
    text_only = reused_emulator.add_model({"id": "plain-1", "base_credits": 1})
    assert text_only["reference_media"] is None
    assert (text_only["supported_api_inputs"], text_only["file_kinds"]) == (["text"], [])


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "params.steps: is required by sketch-1"),
        ({"steps": 0}, "allowed: 1 to 50"),
        ({"steps": 5, "aspectRatio": "1:1"}, "allowed: 2:1, auto"),
        ({"steps": 5, "style": 3}, "params.style"),
        ({"steps": 5, "resolution": "2K"}, "known: aspectRatio, steps, style"),
    ],
)
def test_generations_of_an_added_model_follow_its_definition(
    reused_emulator: RunningEmulator, reused_http: httpx.Client, params: dict[str, Any], named: str
) -> None:
    reused_emulator.add_model(SKETCH)
    refused = reused_http.post(
        CREATE, json={"model": "sketch-1", "prompt": "cat", "params": params}
    )
    assert named in error_of(refused, 400)["message"]
    too_long = reused_http.post(CREATE, json={"model": "sketch-1", "prompt": "c" * 21})
    assert "at most 20" in error_of(too_long, 400)["message"]
    assert reused_emulator.counters()["tasks_created"] == 0


@pytest.mark.parametrize(
    ("aspect", "size"), [({}, (1024, 512)), ({"aspectRatio": "auto"}, (1024, 1024))]
)
def test_an_added_model_is_charged_and_drawn(
    reused_emulator: RunningEmulator,
    reused_http: httpx.Client,
    aspect: dict[str, str],
    size: tuple[int, int],
) -> None:
    reused_emulator.add_model(SKETCH)
    body = {"model": "sketch-1", "prompt": "cat", "params": {"steps": 5, **aspect}}
    created = reused_http.post(CREATE, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["reserved_credits"] == 3
    task = wait_for_status(reused_http, created.json()["id"])
    assert task["final_credits"] == 3
    picture = Image.open(io.BytesIO(httpx.get(task["result"]["primary_url"]).content))
    # Unknown aspect ratios ("auto") are drawn square.
    assert (picture.format, picture.size) == ("PNG", size)
    assert reused_http.get("/api/v1/credits").json() == {"current_credits": 997}


def test_uploads_for_an_added_model_use_its_limits(
    reused_emulator: RunningEmulator, reused_http: httpx.Client
) -> None:
    reused_emulator.add_model(SKETCH)

    def upload(content: bytes, kind: str = "image", model: str = "sketch-1") -> httpx.Response:
        return reused_http.post(
            "/api/v1/files",
            files={"file": ("f", content, "application/octet-stream")},
            data={"kind": kind, "model": model},
        )

    assert upload(image_bytes("png")).status_code == 200
    assert "image allows image/png" in error_of(upload(image_bytes("jpeg")), 400)["message"]
    big = image_bytes("png") + bytes(3000)
    assert len(big) > 2000
    assert "at most 2000 bytes" in error_of(upload(big), 400)["message"]
    assert upload(MP4, kind="video").status_code == 200
    refused = error_of(upload(MP4, kind="video", model="flux-2-flex"), 400)["message"]
    assert "does not accept video" in refused
    assert reused_emulator.counters()["files_uploaded"] == 2


def test_a_known_model_can_be_redefined_with_a_new_param(
    reused_emulator: RunningEmulator, reused_http: httpx.Client
) -> None:
    flex = _models(reused_emulator)["flux-2-flex"]
    seed = {"key": "seed", "type": "number", "required": False, "default": None, "min": 0}
    reused_emulator.add_model({**flex, "params": [*flex["params"], seed]})
    body = {"model": "flux-2-flex", "prompt": "x", "params": {"seed": 42}}
    assert reused_http.post(CREATE, json=body).status_code == 201
    assert _models(reused_emulator)["flux-2-flex"]["params"][-1] == seed
    reused_emulator.reset()
    assert "seed" in error_of(reused_http.post(CREATE, json=body), 400)["message"]


def test_models_can_be_added_over_http_and_at_start(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(models=[ModelDef.model_validate(SKETCH)])
    assert "sketch-1" in _models(emulator)
    with httpx.Client(base_url=emulator.base_url) as admin:
        added = admin.post("/_emulator/models", json={"id": "http-1", "base_credits": 2})
        bad = admin.post("/_emulator/models", json={"id": "bad-1", "base_credits": -1})
        no_options = admin.post(
            "/_emulator/models",
            json={"id": "bad-2", "base_credits": 1, "params": [{"key": "a", "type": "select"}]},
        )
        state = admin.get("/_emulator/state").json()
        # The added models survive no reset: the start ones do.
        after_reset = admin.post("/_emulator/reset").json()
    assert added.status_code == 201
    assert added.json()["id"] == "http-1"
    assert "base_credits" in error_of(bad, 400)["message"]
    assert "needs options" in error_of(no_options, 400)["message"]
    assert state["models"] == [
        "flux-2-flex",
        "flux-kontext-pro",
        "flux-kontext-max",
        "sketch-1",
        "http-1",
    ]
    assert after_reset["models"] == state["models"][:-1]
    with pytest.raises(pydantic.ValidationError):
        emulator.add_model({"id": "x", "base_credits": 1, "surprise": True})
