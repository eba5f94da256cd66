"""Rendered operator inputs read as the API wants them: params and reference media items.

Templates render to strings unless the DAG renders natively: a JSON string is accepted where a
mapping or a list is expected, and anything else fails naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rivya_provider.client import FieldProblem, RequestValidationError


def _decoded(value: Any, field: str, expected: str) -> Any:
    """Accept a JSON string where templates rendered one (unless the DAG renders natively)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise RequestValidationError(
            [
                FieldProblem(
                    field,
                    f"must be {expected}, got the string {value[:80]!r}; render templates as "
                    "JSON (| tojson) or set render_template_as_native_obj=True on the DAG",
                )
            ]
        ) from None


def param_dict(value: Any) -> dict[str, Any]:
    """Read rendered ``model_params``: a mapping, a JSON object, or nothing."""
    value = _decoded(value, "model_params", "a mapping")
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        problem = FieldProblem("model_params", f"must be a mapping, got {type(value).__name__}")
        raise RequestValidationError([problem])
    return dict(value)


def item_list(value: Any, field: str) -> list[dict[str, Any]]:
    """Read rendered reference media items: one mapping, a list of them, a JSON list, or none."""
    value = _decoded(value, field, "a list of reference media items")
    if value is None or value == "":
        return []
    if isinstance(value, Mapping):
        return [dict(value)]
    if not isinstance(value, Sequence) or not all(isinstance(i, Mapping) for i in value):
        problem = FieldProblem(field, "must be a list of reference media items (mappings)")
        raise RequestValidationError([problem])
    return [dict(item) for item in value]
