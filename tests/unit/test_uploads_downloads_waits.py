"""Uploads, downloads and waiting, for both flavours, against httpx.MockTransport."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import httpx
import pytest

from rivya_provider.client import (
    DownloadTooLargeError,
    GenerationFailedError,
    GenerationTimeoutError,
    RequestValidationError,
    ServerError,
)
from rivya_provider.client.catalog.specs import MB
from rivya_provider.client.uploads import detect_mime_type, prepare_upload
from tests.clients import Api
from tests.media import FORMATS, image_bytes, sparse_file, write_image
from tests.unit.conftest import TASK, Script, envelope, task

pytestmark = pytest.mark.no_airflow

FILE = {
    "id": "file_1",
    "object": "file",
    "url": "https://cdn.test/file_1/photo.jpg",
    "kind": "image",
    "mime_type": "image/png",
    "size_bytes": 10,
    "name": "photo.jpg",
    "created_at": "2026-05-11T00:00:00.000Z",
}


def multipart_part(request: httpx.Request, name: str) -> bytes:
    """Return one part of a multipart body: its headers and content."""
    boundary = re.search(r"boundary=([^;]+)", request.headers["content-type"])
    assert boundary
    for part in request.content.split(b"--" + boundary.group(1).encode()):
        if f'name="{name}"'.encode() in part:
            return part
    raise AssertionError(f"no part {name!r}")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_mime_type_comes_from_the_signature(fmt: str) -> None:
    assert detect_mime_type(image_bytes(fmt)) == FORMATS[fmt]
    assert detect_mime_type(b"hello, I am text") is None


async def test_upload_streams_the_real_type_whatever_the_extension(
    api: Api, script: Script, tmp_path: Path
) -> None:
    script.answers = [httpx.Response(200, json=FILE)]
    path = write_image(tmp_path / "photo.jpg", "png")  # the extension lies
    uploaded = await api("upload_file", path, model="flux-kontext-pro", client_request_id="c1")
    assert uploaded.id == "file_1"
    (request,) = script.requests
    assert str(request.url).endswith("/api/v1/files")
    file_part = multipart_part(request, "file")
    assert b'filename="photo.jpg"' in file_part
    assert b"Content-Type: image/png" in file_part
    assert path.read_bytes() in file_part
    assert b"image" in multipart_part(request, "kind")
    assert b"flux-kontext-pro" in multipart_part(request, "model")
    assert b"c1" in multipart_part(request, "client_request_id")
    assert request.headers["authorization"].startswith("Bearer ")


async def test_a_retried_upload_sends_the_whole_file_again(api: Api, script: Script) -> None:
    data = image_bytes("webp")
    source = io.BytesIO(data)
    source.seek(6)  # file objects are uploaded whole, wherever they stand
    script.answers = [
        envelope(503, "public_api_disabled", **{"Retry-After": "1"}),
        httpx.Response(200, json=FILE),
    ]
    await api("upload_file", source, name="ref.webp")
    first, second = (multipart_part(r, "file") for r in script.requests)
    assert first == second
    assert data in second
    assert second.count(b"RIFF") == 1
    assert b"Content-Type: image/webp" in second


@pytest.mark.parametrize(
    ("content", "kwargs", "field", "expected"),
    [
        (b"just some text", {}, "file", "is an unknown type by its content"),
        (image_bytes("png"), {"kind": "video"}, "file", "video allows video/mp4"),
        (image_bytes("png"), {"kind": "document"}, "kind", "allowed: image, video, audio"),
        (b"", {"kind": "image"}, "file", "unknown type"),
        (image_bytes("png"), {"client_request_id": "c" * 129}, "client_request_id", "at most 128"),
    ],
)
async def test_bad_uploads_are_rejected_before_any_request(
    api: Api, script: Script, content: bytes, kwargs: dict[str, str], field: str, expected: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        await api("upload_file", content, name="evil.png", **kwargs)
    assert field in caught.value.fields
    assert expected in str(caught.value)
    assert script.requests == []


async def test_oversize_image_is_rejected_before_any_request(
    api: Api, script: Script, tmp_path: Path
) -> None:
    big = sparse_file(tmp_path / "huge.png", 10 * MB + 1, image_bytes("png"))
    with pytest.raises(RequestValidationError) as caught:
        await api("upload_file", big)
    assert f"is {10 * MB + 1} bytes; image files may be at most {10 * MB} bytes" in str(
        caught.value
    )
    assert script.requests == []


def test_an_image_at_the_limit_is_accepted(tmp_path: Path) -> None:
    edge = sparse_file(tmp_path / "edge.png", 10 * MB, image_bytes("png"))
    prepared = prepare_upload(edge)
    assert (prepared.kind, prepared.mime_type, prepared.size_bytes) == (
        "image",
        "image/png",
        10 * MB,
    )


async def test_missing_files_and_unseekable_streams_are_refused(
    api: Api, script: Script, tmp_path: Path
) -> None:
    with pytest.raises(RequestValidationError, match="not a readable file"):
        await api("upload_file", tmp_path / "nope.png")

    class Pipe(io.RawIOBase):
        def seekable(self) -> bool:
            return False

    with pytest.raises(RequestValidationError, match="seekable"):
        await api("upload_file", Pipe())
    assert script.requests == []


async def test_wait_polls_on_the_documented_schedule(api: Api, script: Script) -> None:
    done = {"primary_url": "https://cdn.test/r/0.png", "urls": ["https://cdn.test/r/0.png"]}
    script.answers = [
        task(status="queued"),
        task(status="processing"),
        task(status="succeeded", final_credits=14, result=done),
    ]
    finished = await api("wait_for_generation", "task_abc")
    assert finished.status == "succeeded"
    assert finished.result_urls == ["https://cdn.test/r/0.png"]
    # The documented first delay, then the interval, each jittered by up to 10 %.
    assert api.sleeps[0] == 2.5
    assert api.sleeps[1:] == [pytest.approx(5.0, rel=0.1)] * 2
    assert api.sleeps[1] != api.sleeps[2]  # waits started together drift apart
    assert all(r.url.path == "/api/v1/generations/task_abc" for r in script.requests)


async def test_wait_raises_the_task_error_when_it_fails(api: Api, script: Script) -> None:
    script.answers = [
        task(status="failed", error={"code": "generation_failed", "message": "NSFW prompt"})
    ]
    with pytest.raises(GenerationFailedError) as caught:
        await api("wait_for_generation", "task_abc", first_delay=0)
    assert (caught.value.task_id, caught.value.code) == ("task_abc", "generation_failed")
    assert "NSFW prompt" in str(caught.value)
    failed = await api("wait_for_generation", "task_abc", raise_on_failure=False)
    assert failed.error.code == "generation_failed"


async def test_wait_gives_up_at_its_deadline(api: Api, script: Script) -> None:
    script.answers = [task(status="processing")]
    with pytest.raises(GenerationTimeoutError) as caught:
        await api("wait_for_generation", "task_abc", timeout=12, poll_interval=5, first_delay=2)
    assert api.sleeps[:2] == [2, pytest.approx(5, rel=0.1)]
    assert sum(api.sleeps) == pytest.approx(12)  # the last pause is cut to the deadline
    assert len(script.requests) == len(api.sleeps)  # and a last poll is made there
    assert caught.value.last_status == "processing"
    assert caught.value.waited_seconds == pytest.approx(12)


async def test_download_writes_atomically_without_the_key(
    api: Api, script: Script, tmp_path: Path
) -> None:
    png = image_bytes("png")
    script.answers = [
        httpx.Response(302, headers={"Location": "https://cdn2.test/final.png"}),
        httpx.Response(200, content=png, headers={"Content-Type": "image/png"}),
    ]
    target = tmp_path / "out" / "result.png"
    got = await api("download", "https://cdn.test/r/0.png", target)
    assert target.read_bytes() == png
    assert (got.path, got.size_bytes, got.content_type) == (str(target), len(png), "image/png")
    assert [str(r.url) for r in script.requests] == [
        "https://cdn.test/r/0.png",
        "https://cdn2.test/final.png",
    ]
    assert all("authorization" not in r.headers for r in script.requests)
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.png"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
async def test_a_downloaded_file_follows_the_umask(
    api: Api, script: Script, tmp_path: Path, umask: int, mode: int
) -> None:
    # A web server or another user's process must be able to read the images a DAG produced
    # (they were 0o600 whatever the umask).
    script.answers = [
        httpx.Response(200, content=b"\x89PNG", headers={"Content-Type": "image/png"})
    ]
    target = tmp_path / "result.png"
    before = os.umask(umask)
    try:
        await api("download", "https://cdn.test/r/0.png", target)
    finally:
        os.umask(before)
    assert target.stat().st_mode & 0o777 == mode


async def test_download_past_the_cap_leaves_nothing_behind(
    api: Api, script: Script, tmp_path: Path
) -> None:
    script.answers = [httpx.Response(200, content=b"x" * 5000)]
    target = tmp_path / "big.png"
    with pytest.raises(DownloadTooLargeError, match="4096 bytes"):
        await api("download", "https://cdn.test/big", target, max_bytes=4096)
    assert list(tmp_path.iterdir()) == []


async def test_download_retries_server_errors_and_rewinds_a_stream(
    api: Api, script: Script
) -> None:
    script.answers = [envelope(502, "bad_gateway"), httpx.Response(200, content=b"abc")]
    sink = io.BytesIO(b"keep:")
    sink.seek(5)
    got = await api("download", "https://cdn.test/r", sink)
    assert sink.getvalue() == b"keep:abc"
    assert got.path is None
    assert got.size_bytes == 3


async def test_download_does_not_retry_a_missing_result(
    api: Api, script: Script, tmp_path: Path
) -> None:
    script.answers = [envelope(404, "not_found")]
    with pytest.raises(Exception, match="not_found"):
        await api("download", "https://cdn.test/gone", tmp_path / "x.png")
    assert len(script.requests) == 1
    assert list(tmp_path.iterdir()) == []


async def test_download_gives_up_after_the_retry_budget(
    api: Api, script: Script, tmp_path: Path
) -> None:
    script.answers = [envelope(500, "internal_error")]
    with pytest.raises(ServerError):
        await api("download", "https://cdn.test/r", tmp_path / "x.png")
    assert len(script.requests) == 4
    assert list(tmp_path.iterdir()) == []


def test_task_fixture_is_documented_shape() -> None:
    assert set(TASK) == {
        "id",
        "status",
        "model",
        "reserved_credits",
        "final_credits",
        "created_at",
        "updated_at",
        "result",
        "error",
    }
