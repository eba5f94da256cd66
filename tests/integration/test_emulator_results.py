"""Result images: real pictures of the requested size and format, served from the CDN."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from rivya_provider.emulator import RunningEmulator
from tests.emulator_fixtures import EmulatorFactory
from tests.integration.emulator_support import SteppedClock, bearer, error_of, wait_for_status


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("flux-2-flex", {}, ("PNG", (1024, 1024), "png")),
        ("flux-2-flex", {"aspectRatio": "16:9"}, ("PNG", (1024, 576), "png")),
        ("flux-2-flex", {"aspectRatio": "9:16", "resolution": "2K"}, ("PNG", (1152, 2048), "png")),
        ("flux-2-flex", {"aspectRatio": "3:2"}, ("PNG", (1024, 688), "png")),
        ("flux-kontext-pro", {}, ("JPEG", (1024, 576), "jpg")),
        (
            "flux-kontext-max",
            {"aspectRatio": "21:9", "outputFormat": "png"},
            ("PNG", (1024, 432), "png"),
        ),
        (
            "flux-kontext-pro",
            {"aspectRatio": "3:4", "outputFormat": "jpeg"},
            ("JPEG", (768, 1024), "jpg"),
        ),
    ],
)
def test_results_are_real_images_of_the_asked_size_and_format(
    reused_emulator: RunningEmulator, model: str, params: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    fmt, size, extension = expected
    with httpx.Client(
        base_url=reused_emulator.base_url, headers=bearer(reused_emulator.api_key)
    ) as http:
        created = http.post(
            "/api/v1/generations", json={"model": model, "prompt": "a red fox", "params": params}
        )
        task = wait_for_status(http, created.json()["id"])
    url = task["result"]["primary_url"]
    assert url.endswith(f"/0.{extension}")
    download = httpx.get(url)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == f"image/{fmt.lower()}"
    picture = Image.open(io.BytesIO(download.content))
    assert (picture.format, picture.size) == (fmt, size)
    # A picture, not a blank canvas: a gradient and shapes give many colours.
    colours = picture.convert("RGB").resize((64, 64)).getcolors(64 * 64)
    assert colours is not None
    assert len(colours) > 16


def test_the_same_task_downloads_the_same_bytes_and_tasks_differ(
    reused_emulator: RunningEmulator,
) -> None:
    with httpx.Client(
        base_url=reused_emulator.base_url, headers=bearer(reused_emulator.api_key)
    ) as http:
        urls = []
        for prompt in ("one", "two"):
            task_id = http.post(
                "/api/v1/generations", json={"model": "flux-kontext-pro", "prompt": prompt}
            ).json()["id"]
            urls.append(wait_for_status(http, task_id)["result"]["primary_url"])
    first = httpx.get(urls[0]).content
    assert httpx.get(urls[0]).content == first
    assert httpx.get(urls[1]).content != first


def test_results_exist_only_for_succeeded_tasks(emulator_factory: EmulatorFactory) -> None:
    clock = SteppedClock()
    emulator = emulator_factory(clock=clock)
    emulator.set_faults(fail_next_tasks=1)
    flex = {"model": "flux-2-flex", "prompt": "x"}
    with httpx.Client(base_url=emulator.base_url, headers=bearer(emulator.api_key)) as http:
        failed_id = http.post("/api/v1/generations", json=flex).json()["id"]
        done_id = http.post("/api/v1/generations", json=flex).json()["id"]
    base = f"{emulator.base_url}/cdn/results"
    assert error_of(httpx.get(f"{base}/{done_id}/0.png"), 404)["code"] == "not_found"
    clock.advance(1)
    assert error_of(httpx.get(f"{base}/{failed_id}/0.png"), 404)["code"] == "not_found"
    assert httpx.get(f"{base}/{done_id}/0.png").status_code == 200
    for wrong in ("0.jpg", "1.png", "zero.png", "0.png.png"):
        assert error_of(httpx.get(f"{base}/{done_id}/{wrong}"), 404)["code"] == "not_found"
    assert error_of(httpx.get(f"{base}/task_unknown/0.png"), 404)["code"] == "not_found"
