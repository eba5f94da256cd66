"""The three documented models as the docs describe them, and their ``/api/v1/models`` entries."""

from __future__ import annotations

from typing import Any

MIB = 1024 * 1024
IMAGE_LIMIT = {"kind": "image", "max_bytes": 10 * MIB}
IMAGE_LIMIT["mime_types"] = ["image/jpeg", "image/png", "image/webp"]


def select(key: str, default: str, options: list[str]) -> dict[str, Any]:
    return {"key": key, "type": "select", "required": False, "default": default, "options": options}


def images(max_files: int) -> dict[str, Any]:
    return {"max_files": max_files, "kinds": ["image"], "limits": [dict(IMAGE_LIMIT)]}


FLEX: dict[str, Any] = {
    "id": "flux-2-flex",
    "display_name": "FLUX.2 Flex",
    "base_credits": 14,
    "max_prompt_length": 5000,
    "supported_modes": ["text-to-image", "image-to-image"],
    "requires_upload_for_modes": ["image-to-image"],
    "reference_media": images(8),
    "params": [
        select("aspectRatio", "1:1", ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"]),
        select("resolution", "1K", ["1K", "2K"]),
    ],
}


def kontext(model_id: str, name: str, credits: int) -> dict[str, Any]:
    return {
        "id": model_id,
        "display_name": name,
        "base_credits": credits,
        "max_prompt_length": None,
        "supported_modes": ["text-to-image", "image-editing"],
        "requires_upload_for_modes": ["image-editing"],
        "reference_media": images(1),
        "params": [
            select("aspectRatio", "16:9", ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"]),
            select("outputFormat", "jpeg", ["jpeg", "png"]),
            select("enableTranslation", "true", ["true", "false"]),
            select("promptUpsampling", "false", ["false", "true"]),
            {"key": "safetyTolerance", "type": "number", "required": False, "default": 2}
            | {"min": 0, "max": 6},
            {"key": "watermark", "type": "text", "required": False, "default": None},
        ],
    }


DOCUMENTED_MODELS = [
    FLEX,
    kontext("flux-kontext-pro", "FLUX.1 Kontext Pro", 4),
    kontext("flux-kontext-max", "FLUX.1 Kontext Max", 8),
]


def model_entry(definition: dict[str, Any], *, option_objects: bool) -> dict[str, Any]:
    """Return the ``/models`` entry of a definition, filling the documented fields it omits."""
    media = definition.get("reference_media")
    params = [dict(p) for p in definition["params"]]
    if option_objects:
        for param in params:
            if "options" in param:
                param["options"] = [{"value": o, "label": o} for o in param["options"]]
    return {
        "category": "image",
        "runtime": "async_task",
        "billing_type": "FIXED",
        "supported_modes": ["text-to-image"],
        "max_prompt_length": None,
        "api_status": "available",
        "api_input_status": "partial_requires_files" if media else "text_only",
        "supported_api_inputs": ["text", "file"] if media else ["text"],
        "requires_files_api": False,
        "requires_upload_for_modes": [],
        "url_input_supported": False,
        "file_kinds": media["kinds"] if media else [],
        "chat_capabilities": None,
        "notices": [],
        **definition,
        "params": params,
    }
