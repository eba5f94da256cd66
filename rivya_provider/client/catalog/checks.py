"""The local checks made before anything is sent: bad input for a known model costs nothing.

A model id that Rivya's ``/models`` does not list is refused with the closest listed id; when
only the built-in catalogue is known (``/models`` could not be read), an unknown model is sent
as-is: Rivya adds models without notice and validates them itself.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from rivya_provider.client.catalog.specs import (
    CATALOG,
    DEFAULT_FILE_LIMITS,
    REFERENCE_ITEMS_PARAM,
    FileLimit,
    ListedCatalog,
    ModelSpec,
)
from rivya_provider.client.errors import FieldProblem, RequestValidationError
from rivya_provider.client.models import FileKind, GenerationRequest, ReferenceMediaItem

log = logging.getLogger("rivya_provider.client")


def validate_generation(
    request: GenerationRequest, *, catalog: Mapping[str, ModelSpec] = CATALOG
) -> GenerationRequest:
    """Check a request against the catalogue and return it with params normalised for the wire.

    Every problem is reported at once. A model ``/models`` does not list is refused; against the
    built-in catalogue, unknown models pass through untouched.

    :param request: the generation request as the user gave it.
    :param catalog: the models to check against (a :class:`ListedCatalog` is Rivya's own list).
    :raises RequestValidationError: naming each bad field, its value and what is allowed.
    """
    spec = catalog.get(request.model)
    if spec is None:
        if isinstance(catalog, ListedCatalog):
            raise RequestValidationError([_unlisted_model(request.model, catalog)])
        return request
    problems = _prompt_problems(spec, request.prompt)
    for key in _unlisted_params(spec, request.params):
        log.warning(
            "Param %r is not in the built-in description of %s; sending it for Rivya to judge",
            key,
            spec.id,
        )
    params: dict[str, Any] = {}
    for key, value in request.params.items():
        try:
            params[key] = _normalise_param(spec, key, value)
        except RequestValidationError as exc:  # a ValueError too: must come first
            problems.extend(exc.problems)
        except ValueError as exc:
            problems.append(FieldProblem(f"params.{key}", f"{exc} (model {spec.id})"))
    if problems:
        raise RequestValidationError(problems, subject=f"{spec.id} generation request")
    return request.model_copy(update={"params": params})


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing when none is close."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unlisted_model(model: str, catalog: Mapping[str, ModelSpec]) -> FieldProblem:
    hint = _did_you_mean(model, list(catalog))
    listed = ", ".join(sorted(catalog))
    return FieldProblem("model", f"{model!r} is not a model Rivya lists{hint}; it lists {listed}")


def _unlisted_params(spec: ModelSpec, params: Mapping[str, Any]) -> list[str]:
    """Params a lenient spec does not list (they are sent unchecked)."""
    if spec.strict_params:
        return []
    return [k for k in params if k != REFERENCE_ITEMS_PARAM and spec.param(k) is None]


def _prompt_problems(spec: ModelSpec, prompt: str | None) -> list[FieldProblem]:
    if prompt is None or not prompt.strip():
        if not spec.prompt_required:
            return []
        return [FieldProblem("prompt", f"is required for {spec.id} and must not be blank")]
    if spec.max_prompt_length is not None and len(prompt) > spec.max_prompt_length:
        return [
            FieldProblem(
                "prompt",
                f"is {len(prompt)} characters; {spec.id} allows at most {spec.max_prompt_length}",
            )
        ]
    return []


def _normalise_param(spec: ModelSpec, key: str, value: Any) -> Any:
    if key == REFERENCE_ITEMS_PARAM:
        return _reference_items(spec, value)
    param = spec.param(key)
    if param is None and not spec.strict_params:
        return value
    if param is None:
        known = [p.key for p in spec.params] + [REFERENCE_ITEMS_PARAM]
        hint = _did_you_mean(key, known)
        raise ValueError(f"unknown param{hint}; known params: {', '.join(known)}")
    return param.normalise(value)


def _reference_items(spec: ModelSpec, value: Any) -> list[dict[str, Any]]:
    field_name = f"params.{REFERENCE_ITEMS_PARAM}"
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"expected a list of reference media items, got {type(value).__name__}")
    if spec.max_reference_images is not None and len(value) > spec.max_reference_images:
        raise ValueError(
            f"{len(value)} items given; {spec.id} accepts at most {spec.max_reference_images}"
        )
    problems: list[FieldProblem] = []
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(value):
        where = f"{field_name}[{index}]"
        try:
            item = ReferenceMediaItem.model_validate(raw)
        except ValidationError as exc:
            problems.extend(pydantic_problems(where, exc))
            continue
        if spec.reference_kinds and item.kind not in spec.reference_kinds:
            allowed = ", ".join(str(k) for k in spec.reference_kinds)
            problems.append(
                FieldProblem(f"{where}.kind", f"{item.kind!s} is not accepted; allowed: {allowed}")
            )
        items.append(item.to_wire())
    if problems:
        raise RequestValidationError(problems)
    return items


def pydantic_problems(where: str, exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"])
        location = f"{where}.{path}" if path else where
        problems.append(FieldProblem(location, f"{err['msg']} (got {err.get('input')!r})"))
    return problems


def file_limit(
    kind: FileKind, *, model: str | None = None, catalog: Mapping[str, ModelSpec] = CATALOG
) -> FileLimit | None:
    """Return the Files API limit for ``kind``, as ``model`` sets it when the catalogue knows it.

    :returns: ``None`` when a known model does not accept this kind at all.
    """
    spec = catalog.get(model) if model else None
    if spec is None:
        return DEFAULT_FILE_LIMITS[kind]
    return spec.file_limits.get(kind)
