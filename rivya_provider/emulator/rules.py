"""Server-side checks of ``POST /api/v1/generations`` bodies, written from Rivya's docs.

Every failure is a 400 ``validation_failed`` whose message names the field, the value and what is
allowed. All problems of a body are reported at once, joined by ``; ``.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rivya_provider.emulator.errors import validation_failed
from rivya_provider.emulator.models import Catalogue, ModelDef, ParamDef

CLIENT_REQUEST_ID_MAX = 128
IDEMPOTENCY_KEY_MAX = 255
REFERENCE_PARAM = "referenceMediaItems"
BODY_KEYS = ("model", "prompt", "params", "client_request_id")
_ITEM_KEYS = ("url", "kind", "name", "mimeType", "durationSeconds", "durationToken")

#: Tells whether a URL is a file of this emulator's Files API, and of which kind.
FileLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class Generation:
    """A valid generation body: as sent (for the idempotency fingerprint) and its model."""

    body: dict[str, Any]
    model: ModelDef
    prompt: str
    params: dict[str, Any]


def check_idempotency_key(value: str | None) -> str | None:
    """Return the Idempotency-Key header, refusing an empty or over-long one."""
    if value is not None and not 0 < len(value) <= IDEMPOTENCY_KEY_MAX:
        raise validation_failed(
            f"Idempotency-Key: is {len(value)} characters; "
            f"allowed: 1 to {IDEMPOTENCY_KEY_MAX} characters"
        )
    return value


def parse_generation(raw: bytes, *, catalogue: Catalogue, file_kind: FileLookup) -> Generation:
    """Parse and validate a generation body against the model it names.

    :param raw: the request body.
    :param catalogue: the models served.
    :param file_kind: the kind of an uploaded file by its URL, ``None`` when not uploaded here.
    :raises ApiError: ``validation_failed`` naming each bad field.
    """
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nested too deep
        raise validation_failed(f"body: is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise validation_failed(f"body: must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise validation_failed(
            f"{unknown[0]}: is not a known field; allowed: {', '.join(BODY_KEYS)}"
        )
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise validation_failed(
            f"model: is required and must be a non-empty string, got {model_id!r}"
        )
    model = catalogue.get(model_id)
    if model is None:
        raise validation_failed(
            f"model: {model_id!r} is not available; available: {', '.join(catalogue.ids())}"
        )
    problems = _prompt_problems(model, body.get("prompt"))
    problems += _trace_id_problems(body.get("client_request_id"))
    params = body.get("params", {})
    if not isinstance(params, dict):
        problems.append(f"params: must be an object, got {type(params).__name__} {params!r}")
        params = {}
    problems += _param_problems(model, params, file_kind)
    if problems:
        raise validation_failed("; ".join(problems))
    return Generation(body=body, model=model, prompt=body["prompt"], params=params)


def _prompt_problems(model: ModelDef, prompt: object) -> list[str]:
    if not isinstance(prompt, str) or not prompt.strip():
        return [
            f"prompt: is required for {model.id} and must be a non-blank string, got {prompt!r}"
        ]
    limit = model.max_prompt_length
    if limit is not None and len(prompt) > limit:
        return [f"prompt: is {len(prompt)} characters; {model.id} allows at most {limit}"]
    return []


def _trace_id_problems(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"client_request_id: must be a string, got {value!r}"]
    if len(value) > CLIENT_REQUEST_ID_MAX:
        return [f"client_request_id: is {len(value)} characters; at most {CLIENT_REQUEST_ID_MAX}"]
    return []


def _param_problems(model: ModelDef, params: dict[str, Any], file_kind: FileLookup) -> list[str]:
    problems = []
    for key, value in params.items():
        if key == REFERENCE_PARAM:
            problems += _reference_problems(model, value, file_kind)
            continue
        param = model.param(key)
        if param is None:
            known = [p.key for p in model.params]
            if model.reference_media is not None:
                known.append(REFERENCE_PARAM)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"params.{key}: is not a param of {model.id}{hint}; "
                f"known: {', '.join(known) or 'none'}"
            )
            continue
        problem = _value_problem(param, value)
        if problem:
            problems.append(f"params.{key}: {problem} ({model.id})")
    for param in model.params:
        if param.required and param.key not in params:
            problems.append(f"params.{param.key}: is required by {model.id}")
    return problems


def _value_problem(param: ParamDef, value: Any) -> str | None:
    if param.type == "select":
        options = param.options or ()
        if not isinstance(value, str):
            # The docs send even the boolean options as the strings "true" / "false".
            return f"{value!r} must be one of the strings {', '.join(options)}"
        return (
            None if value in options else f"{value!r} is not allowed; allowed: {', '.join(options)}"
        )
    if param.type == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return f"{value!r} is not a number"
        low = -math.inf if param.min is None else param.min
        high = math.inf if param.max is None else param.max
        if not low <= value <= high:
            return f"{value!r} is out of range; allowed: {low:g} to {high:g}"
        return None
    return None if isinstance(value, str) else f"{value!r} is not text"


def _reference_problems(model: ModelDef, value: Any, file_kind: FileLookup) -> list[str]:
    where = f"params.{REFERENCE_PARAM}"
    refs = model.reference_media
    if refs is None:
        return [f"{where}: {model.id} takes no reference media"]
    if not isinstance(value, list):
        return [f"{where}: must be a list of items, got {type(value).__name__}"]
    if len(value) > refs.max_files:
        return [f"{where}: {len(value)} items given; {model.id} accepts at most {refs.max_files}"]
    problems = []
    for index, item in enumerate(value):
        problems += _item_problems(model, f"{where}[{index}]", item, file_kind)
    return problems


def _item_problems(model: ModelDef, where: str, item: Any, file_kind: FileLookup) -> list[str]:
    refs = model.reference_media
    assert refs is not None
    if not isinstance(item, dict):
        return [f"{where}: must be an object with url and kind, got {item!r}"]
    problems = [
        f"{where}.{key}: is not a known field; allowed: {', '.join(_ITEM_KEYS)}"
        for key in sorted(set(item) - set(_ITEM_KEYS))
    ]
    kind = item.get("kind")
    if kind not in refs.kinds:
        problems.append(f"{where}.kind: {kind!r} is not accepted; allowed: {', '.join(refs.kinds)}")
    url = item.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.append(f"{where}.url: must be an http(s) URL, got {url!r}")
    elif not model.url_input_supported:
        uploaded = file_kind(url)
        if uploaded is None:
            problems.append(
                f"{where}.url: {url!r} is not a Files API URL; {model.id} takes only files "
                "uploaded with POST /api/v1/files"
            )
        elif kind in refs.kinds and uploaded != kind:
            problems.append(f"{where}.kind: {kind!r} but the uploaded file is {uploaded!r}")
    for key in ("name", "mimeType", "durationToken"):
        if item.get(key) is not None and not isinstance(item[key], str):
            problems.append(f"{where}.{key}: must be a string, got {item[key]!r}")
    seconds = item.get("durationSeconds")
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
    ):
        problems.append(f"{where}.durationSeconds: must be a number >= 0, got {seconds!r}")
    return problems
