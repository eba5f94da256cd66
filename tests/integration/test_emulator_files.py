"""The Files API and the file CDN over real HTTP (multipart uploads, signature checks, limits)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from rivya_provider.emulator import RunningEmulator
from tests.integration.emulator_support import bearer, error_of
from tests.media import image_bytes

FILES = "/api/v1/files"
MB = 1024 * 1024
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)


def upload(
    http: httpx.Client,
    content: bytes,
    *,
    name: str = "ref.png",
    part_type: str = "image/png",
    **fields: str,
) -> httpx.Response:
    return http.post(FILES, files={"file": (name, content, part_type)}, data=fields)


def test_an_image_upload_is_stored_and_served(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    png = image_bytes("png")
    response = upload(http, png, kind="image", client_request_id="trace-1")
    assert response.status_code == 200
    stored = response.json()
    assert stored["id"].startswith("file_")
    assert {k: v for k, v in stored.items() if k not in ("id", "url", "created_at")} == {
        "object": "file",
        "kind": "image",
        "mime_type": "image/png",
        "size_bytes": len(png),
        "name": "ref.png",
        "model": None,
    }
    assert "duration_token" not in stored
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stored["created_at"])
    assert stored["url"] == f"{emulator.base_url}/cdn/files/{stored['id']}/ref.png"
    assert http.get(f"{FILES}/{stored['id']}").json() == stored
    # The CDN URL works without a key, like a presigned URL.
    download = httpx.get(stored["url"])
    assert download.content == png
    assert download.headers["Content-Type"] == "image/png"
    assert emulator.counters()["files_uploaded"] == 1


def test_the_type_comes_from_the_content_not_the_name(http: httpx.Client) -> None:
    response = upload(
        http, image_bytes("webp"), name="../holiday photo.jpg", part_type="image/jpeg", kind="image"
    )
    stored = response.json()
    assert stored["mime_type"] == "image/webp"
    assert stored["name"] == "../holiday photo.jpg"
    assert stored["url"].endswith("/holiday_photo.jpg")
    assert httpx.get(stored["url"]).content == image_bytes("webp")


@pytest.mark.parametrize(
    ("content", "kind", "part"),
    [(MP4, "video", "movie.mp4"), (WAV, "audio", "voice.wav")],
)
def test_video_and_audio_get_a_duration_token(
    http: httpx.Client, content: bytes, kind: str, part: str
) -> None:
    stored = upload(http, content, name=part, part_type="application/octet-stream", kind=kind)
    body = stored.json()
    assert stored.status_code == 200, stored.text
    assert body["kind"] == kind
    assert body["mime_type"] in ("video/mp4", "audio/x-wav", "audio/wav")
    assert body["duration_token"].startswith("dur_")


def test_a_model_is_recorded_and_checked(http: httpx.Client) -> None:
    stored = upload(http, image_bytes("jpeg"), name="a.jpg", kind="image", model="flux-2-flex")
    assert stored.json()["model"] == "flux-2-flex"
    unknown = upload(http, image_bytes(), kind="image", model="flux-9")
    assert "model: 'flux-9'" in error_of(unknown, 400)["message"]
    refused = upload(http, MP4, name="m.mp4", kind="video", model="flux-kontext-pro")
    message = error_of(refused, 400)["message"]
    assert "does not accept video" in message


@pytest.mark.parametrize(
    ("files", "data", "named"),
    [
        ({}, {"kind": "image"}, "file"),
        (None, {"kind": "image", "file": "not a file"}, "file"),
        ({"file": ("a.png", image_bytes(), "image/png")}, {}, "kind: is required"),
        ({"file": ("a.png", image_bytes(), "image/png")}, {"kind": "document"}, "'document'"),
        ({"file": ("a.png", b"plain text", "image/png")}, {"kind": "image"}, "unknown type"),
        ({"file": ("a.png", b"", "image/png")}, {"kind": "image"}, "empty"),
        ({"file": ("a.png", image_bytes(), "image/png")}, {"kind": "video"}, "image/png"),
        (
            {"file": ("a.png", image_bytes(), "image/png")},
            {"kind": "image", "client_request_id": "c" * 129},
            "client_request_id",
        ),
    ],
)
def test_bad_uploads_are_validation_failed(
    reused_emulator: RunningEmulator,
    reused_http: httpx.Client,
    files: dict[str, Any] | None,
    data: dict[str, str],
    named: str,
) -> None:
    # httpx sends a urlencoded form when there are no files; force multipart with a dummy part.
    response = reused_http.post(FILES, files=files or {"other": ("x", b"x")}, data=data)
    error = error_of(response, 400)
    assert error["code"] == "validation_failed"
    assert named in error["message"]
    assert reused_emulator.counters()["files_uploaded"] == 0


def test_an_oversize_image_is_refused_with_the_limit(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    too_big = image_bytes("png") + bytes(10 * MB)
    error = error_of(upload(http, too_big, kind="image"), 400)
    assert str(10 * MB) in error["message"]
    assert emulator.counters()["files_uploaded"] == 0


def test_other_accounts_files_and_unknown_files_are_not_found(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    stored = upload(http, image_bytes(), kind="image").json()
    stranger = emulator.add_key(account="acct_other")
    foreign = httpx.get(f"{emulator.base_url}{FILES}/{stored['id']}", headers=bearer(stranger))
    assert error_of(foreign, 404)["code"] == "not_found"
    assert error_of(http.get(f"{FILES}/file_missing"), 404)["code"] == "not_found"
    wrong_name = httpx.get(stored["url"].replace("ref.png", "other.png"))
    assert error_of(wrong_name, 404)["code"] == "not_found"
