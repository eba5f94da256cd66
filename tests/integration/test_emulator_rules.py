"""The emulator's own reading of the generation rules: params by type, reference media, limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rivya_provider.emulator import RunningEmulator
from tests.integration.emulator_support import KONTEXT, error_of
from tests.integration.test_emulator_files import MP4
from tests.media import image_bytes

CREATE = "/api/v1/generations"


def _uploaded(http: httpx.Client, content: bytes, kind: str) -> dict[str, Any]:
    response = http.post(
        "/api/v1/files",
        files={"file": ("ref", content, "application/octet-stream")},
        data={"kind": kind},
    )
    assert response.status_code == 200, response.text
    stored: dict[str, Any] = response.json()
    return {"url": stored["url"], "kind": kind, "name": "ref"}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        # The docs send the boolean options as strings; a JSON boolean is not one of them.
        ({"enableTranslation": True}, "must be one of the strings true, false"),
        ({"promptUpsampling": "yes"}, "'yes' is not allowed; allowed: false, true"),
        ({"safetyTolerance": "3"}, "params.safetyTolerance: '3' is not a number"),
        ({"safetyTolerance": True}, "is not a number"),
        ({"safetyTolerance": -1}, "allowed: 0 to 6"),
        ({"outputFormat": "webp"}, "allowed: jpeg, png"),
        ({"watermark": 5}, "params.watermark: 5 is not text"),
        ({"aspectRatio": "3:2"}, "allowed: 21:9, 16:9, 4:3, 1:1, 3:4, 9:16"),
    ],
)
def test_params_are_checked_by_type_options_and_range(
    reused_emulator: RunningEmulator, reused_http: httpx.Client, params: dict[str, Any], named: str
) -> None:
    response = reused_http.post(CREATE, json={**KONTEXT, "params": params})
    message = error_of(response, 400)["message"]
    assert named in message
    assert "flux-kontext-pro" in message
    assert reused_emulator.counters()["tasks_created"] == 0


def test_documented_values_are_accepted(reused_http: httpx.Client) -> None:
    params = {
        "aspectRatio": "21:9",
        "outputFormat": "png",
        "enableTranslation": "false",
        "promptUpsampling": "true",
        "safetyTolerance": 6,
        "watermark": "ACME",
    }
    assert reused_http.post(CREATE, json={**KONTEXT, "params": params}).status_code == 201
    half = {"safetyTolerance": 2.5}
    assert reused_http.post(CREATE, json={**KONTEXT, "params": half}).status_code == 201


def test_every_problem_is_reported_at_once(reused_http: httpx.Client) -> None:
    body = {
        "model": "flux-2-flex",
        "prompt": "",
        "client_request_id": "c" * 129,
        "params": {"resolution": "4K", "aspectRatio": "5:4"},
    }
    message = error_of(reused_http.post(CREATE, json=body), 400)["message"]
    for named in ("prompt:", "client_request_id:", "params.resolution:", "params.aspectRatio:"):
        assert named in message


def test_reference_media_must_be_uploaded_files_of_an_accepted_kind(
    reused_emulator: RunningEmulator, reused_http: httpx.Client
) -> None:
    image = _uploaded(reused_http, image_bytes(), "image")
    video = _uploaded(reused_http, MP4, "video")

    def create(model: str, items: Any) -> httpx.Response:
        body = {"model": model, "prompt": "edit", "params": {"referenceMediaItems": items}}
        return reused_http.post(CREATE, json=body)

    assert create("flux-kontext-pro", [image]).status_code == 201
    by_name = {**image, "url": image["url"].replace("127.0.0.1", "localhost")}
    assert create("flux-kontext-pro", [by_name]).status_code == 201
    assert create("flux-2-flex", [image] * 8).status_code == 201
    cases = [
        ("flux-kontext-pro", [image, image], "2 items given; flux-kontext-pro accepts at most 1"),
        ("flux-2-flex", [image] * 9, "accepts at most 8"),
        ("flux-2-flex", image, "must be a list"),
        ("flux-2-flex", [{**image, "kind": "video"}], "[0].kind: 'video' is not accepted"),
        ("flux-2-flex", [{**video, "kind": "image"}], "the uploaded file is 'video'"),
        ("flux-2-flex", [{**image, "url": "https://example.com/a.png"}], "not a Files API URL"),
        ("flux-2-flex", [{**image, "url": "ftp://x"}], "must be an http(s) URL"),
        ("flux-2-flex", [{"kind": "image"}], "[0].url: must be an http(s) URL, got None"),
        ("flux-2-flex", [{**image, "mime_type": "image/png"}], "[0].mime_type: is not a known"),
        ("flux-2-flex", [{**image, "durationSeconds": -1}], "durationSeconds: must be a number"),
        ("flux-2-flex", ["https://x/a.png"], "[0]: must be an object"),
    ]
    for model, items, named in cases:
        message = error_of(create(model, items), 400)["message"]
        assert named in message, (items, message)
    assert reused_emulator.counters()["tasks_created"] == 3


def test_text_only_models_take_no_reference_media(
    reused_emulator: RunningEmulator, reused_http: httpx.Client
) -> None:
    reused_emulator.add_model({"id": "words-1", "base_credits": 1})
    body = {"model": "words-1", "prompt": "x", "params": {"referenceMediaItems": []}}
    assert (
        "takes no reference media" in error_of(reused_http.post(CREATE, json=body), 400)["message"]
    )
