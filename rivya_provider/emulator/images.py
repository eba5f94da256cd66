"""Result images: real, small-to-draw pictures of the size and format a task asked for.

The picture is a two-colour gradient with a few shapes, all derived from the task id and prompt, so
the same task always downloads the same bytes. Images are drawn on first download and cached.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from rivya_provider.emulator.models import ModelDef

_FORMATS = {"png": ("PNG", "png", "image/png"), "jpeg": ("JPEG", "jpg", "image/jpeg")}


@dataclass(frozen=True)
class ImageSpec:
    """Size and file format of a result image."""

    width: int
    height: int
    format: str  # "png" or "jpeg"

    @property
    def extension(self) -> str:
        return _FORMATS[self.format][1]

    @property
    def mime_type(self) -> str:
        return _FORMATS[self.format][2]


def image_spec(*, model: ModelDef, params: Mapping[str, Any]) -> ImageSpec:
    """Work out the result image of a generation from its model and (validated) params.

    A model without these params, or with values the emulator cannot draw (an aspect ratio such as
    ``auto``), gets a 1K square PNG.

    :param model: the model's definition.
    :param params: the request's params; missing ones take the model's defaults.
    """

    def param(key: str, fallback: str) -> str:
        declared = model.param(key)
        if declared is None:
            return fallback
        value = params.get(key, declared.default)
        return fallback if value is None else str(value)

    long_side = 2048 if param("resolution", "1K") == "2K" else 1024
    width, height = _size(param("aspectRatio", "1:1"), long_side)
    output = param("outputFormat", "png")
    return ImageSpec(width, height, output if output in _FORMATS else "png")


def render(*, seed: str, spec: ImageSpec) -> bytes:
    """Draw the picture for ``seed`` and encode it.

    :param seed: what makes the picture unique (task id and prompt).
    :param spec: size and format.
    """
    digest = hashlib.sha256(seed.encode()).digest()
    size = (spec.width, spec.height)
    # Resizing Pillow's 256-pixel gradient is much faster than drawing one line per row.
    mask = Image.linear_gradient("L").rotate(digest[0] % 4 * 90).resize(size)
    picture = Image.composite(
        Image.new("RGB", size, _colour(digest, 1)), Image.new("RGB", size, _colour(digest, 4)), mask
    )
    draw = ImageDraw.Draw(picture)
    for shape in range(4):
        at = 7 + shape * 6
        left = digest[at] * spec.width // 320
        top = digest[at + 1] * spec.height // 320
        box = (left, top, left + spec.width // 5, top + spec.height // 5)
        if digest[at + 2] % 2:
            draw.ellipse(box, fill=_colour(digest, at + 3))
        else:
            draw.rectangle(box, fill=_colour(digest, at + 3))
    buffer = io.BytesIO()
    if spec.format == "jpeg":
        picture.save(buffer, format="JPEG", quality=85)
    else:
        picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class ImageCache:
    """Keeps the most recently downloaded images, up to ``max_items``."""

    def __init__(self, *, max_items: int = 16) -> None:
        """Start empty.

        :param max_items: how many encoded images to keep.
        """
        self._max_items = max_items
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_render(self, *, key: str, seed: str, spec: ImageSpec) -> bytes:
        """Return the cached image under ``key``, drawing it first when missing.

        :param key: cache key (one per result URL).
        :param seed: passed to :func:`render`.
        :param spec: passed to :func:`render`.
        """
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
                return cached
        # Drawn outside the lock: two first downloads at once merely draw the same bytes twice.
        data = render(seed=seed, spec=spec)
        with self._lock:
            self._items[key] = data
            while len(self._items) > self._max_items:
                self._items.popitem(last=False)
        return data

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _size(ratio: str, long_side: int) -> tuple[int, int]:
    try:
        across, down = (float(part) for part in ratio.split(":"))
    except ValueError:
        across, down = 1.0, 1.0
    if across <= 0 or down <= 0:
        across, down = 1.0, 1.0
    if across >= down:
        return long_side, _multiple_of_16(long_side * down / across)
    return _multiple_of_16(long_side * across / down), long_side


def _multiple_of_16(value: float) -> int:
    return max(16, int(value / 16 + 0.5) * 16)


def _colour(digest: bytes, at: int) -> tuple[int, int, int]:
    return digest[at % 32], digest[(at + 1) % 32], digest[(at + 2) % 32]
