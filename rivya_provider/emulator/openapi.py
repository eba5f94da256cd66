"""The OpenAPI document of the public routes, as ``GET /api/v1/openapi.json`` serves it.

FastAPI generates it; this module only corrects what FastAPI cannot know: errors are 400
``validation_failed`` envelopes (never 422), authenticated routes take a bearer key, and the two
hand-parsed request bodies get their schemas.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from rivya_provider.emulator.models import FILE_KINDS
from rivya_provider.emulator.rules import CLIENT_REQUEST_ID_MAX, IDEMPOTENCY_KEY_MAX

IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key and body within 24 h replays the first task without a new charge.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
}
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "kind"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "kind": {"type": "string", "enum": list(FILE_KINDS)},
                    "model": {"type": "string"},
                    "client_request_id": {"type": "string", "maxLength": CLIENT_REQUEST_ID_MAX},
                },
            }
        }
    },
}
_FASTAPI_ONLY_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Make ``app`` serve the corrected document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _corrected(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    separate_input_output_schemas=False,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _corrected(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    for name in _FASTAPI_ONLY_SCHEMAS:
        components.get("schemas", {}).pop(name, None)
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "rvya_sk_... key"}
    }
    for path in schema["paths"].values():
        for operation in path.values():
            operation["responses"].pop("422", None)
            if "401" in operation["responses"]:
                operation["security"] = [{"bearerAuth": []}]
    return schema
