"""Real media files for upload tests, made with Pillow (no binary fixtures in the repo)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

FORMATS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def image_bytes(fmt: str = "png", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(buffer, format=fmt.upper())
    return buffer.getvalue()


def write_image(path: Path, fmt: str = "png") -> Path:
    path.write_bytes(image_bytes(fmt))
    return path


def sparse_file(path: Path, size: int, head: bytes) -> Path:
    """A file of ``size`` bytes that starts with ``head`` and costs no disk or memory."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path
