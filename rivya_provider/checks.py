"""Checks of operator and sensor arguments, run before the first request.

Plain arguments are checked when the operator is built (a DAG with a bad one does not import);
templated ones right after rendering, at the start of ``execute``. Each check names the field and
raises :class:`RequestValidationError` (a ``RivyaError``), never a raw library exception.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rivya_provider.client import FieldProblem, RequestValidationError, is_http_url, path_id

#: Where results may be copied: local folders and the object stores ObjectStoragePath serves.
OUTPUT_PROTOCOLS = frozenset(
    {"", "file", "local", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "hdfs", "memory"}
)


def _number(value: Any) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def seconds(name: str, value: Any, *, zero: bool = False) -> list[FieldProblem]:
    """Problems of a duration in seconds (a number or a timedelta): positive, or >= 0."""
    number = _number(value)
    if number is None:
        got = type(value).__name__
        return [FieldProblem(name, f"must be a number of seconds or a timedelta, got {got}")]
    if number < 0 or (number == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        return [FieldProblem(name, f"must be {bound} seconds, got {number:g}")]
    return []


def whole(name: str, value: Any, *, minimum: int) -> list[FieldProblem]:
    """Problems of a whole number that must be at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return [FieldProblem(name, f"must be a whole number, got {type(value).__name__}")]
    if value < minimum:
        return [FieldProblem(name, f"must be at least {minimum}, got {value}")]
    return []


def _is_source(value: Any) -> bool:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return isinstance(value, str | os.PathLike | ObjectStoragePath)


def file_sources(name: str, value: Any, *, required: bool = False) -> list[FieldProblem]:
    """Problems of reference file sources: a path or URI, or a list of them."""
    if value is None or value == "":
        return [FieldProblem(name, "is empty; give at least one path or URI")] if required else []
    if _is_source(value):
        return []
    if isinstance(value, Sequence) and all(_is_source(item) for item in value):
        if required and not value:
            return [FieldProblem(name, "is empty; give at least one path or URI")]
        return []
    return [FieldProblem(name, f"must be a path, a URI or a list of them, got {_kind(value)}")]


def _kind(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        inner = {type(item).__name__ for item in value if not _is_source(item)}
        return f"a list holding {', '.join(sorted(inner))}"
    return type(value).__name__


def output_path(value: Any, name: str = "output_path") -> list[FieldProblem]:
    """Problems of a results folder: a known storage URI or a local folder that is not a file.

    :param name: the argument that holds the folder (``output_path`` or ``output_dir``).
    """
    if value is None or value == "":
        return []
    if not _is_source(value):
        return [FieldProblem(name, f"must be a folder path or URI, got {_kind(value)}")]
    text = str(value)
    protocol = urlsplit(text).scheme.lower() if "://" in text else ""
    if protocol not in OUTPUT_PROTOCOLS:
        allowed = ", ".join(sorted(p for p in OUTPUT_PROTOCOLS if p))
        return [FieldProblem(name, f"{protocol}:// is not a storage; use {allowed}")]
    if protocol not in {"", "file", "local"}:
        return []
    local = Path(urlsplit(text).path if protocol else text).expanduser()
    for folder in (local, *local.parents):
        if folder.exists() and not folder.is_dir():
            return [FieldProblem(name, f"{folder} is a file, not a folder")]
    return []


def output_dir(value: Any) -> list[FieldProblem]:
    """Problems of a folder under which each run gets ``<run date>/<run folder>/``."""
    return output_path(value, name="output_dir")


def _given(value: Any) -> bool:
    return value is not None and value != ""


def one_output(operator: Any) -> list[FieldProblem]:
    """``output_path`` names the folder itself, ``output_dir`` its parent: one of them at most."""
    if _given(operator.output_path) and _given(operator.output_dir):
        return [
            FieldProblem(
                "output_path",
                "cannot be given together with output_dir; give one: output_path is the exact "
                "folder, output_dir the folder under which each run gets <run date>/<run folder>/",
            )
        ]
    return []


def reference_items(name: str, items: Iterable[Mapping[str, Any]]) -> list[FieldProblem]:
    """Problems of reference media items given by the user: each needs an http(s) ``url``."""
    return [
        FieldProblem(f"{name}[{index}].url", "must be an http(s) URL (upload files first)")
        for index, item in enumerate(items)
        if not is_http_url(item.get("url"))
    ]


def generation_id(value: Any) -> list[FieldProblem]:
    """Problems of a generation id as it goes into the status path."""
    try:
        path_id(value, field_name="generation_id")
    except RequestValidationError as exc:
        return exc.problems
    return []


def raise_problems(problems: list[FieldProblem], *, subject: str) -> None:
    """Raise one error listing every problem, if there is any."""
    if problems:
        raise RequestValidationError(problems, subject=subject)


def generate_arguments(operator: Any) -> None:
    """Check ``RivyaGenerateOperator``'s plain arguments when it is built."""
    raise_problems(
        [
            *seconds("generation_timeout", operator.generation_timeout),
            *_unless_none(seconds, "poll_interval", operator.poll_interval),
            *_unless_none(seconds, "first_poll_delay", operator.first_poll_delay, zero=True),
            *whole("max_download_bytes", operator.max_download_bytes, minimum=1),
            *file_sources("reference_files", operator.reference_files),
            *_unless_template(output_path, operator.output_path),
            *_unless_template(output_dir, operator.output_dir),
            *one_output(operator),
        ],
        subject=f"arguments of task {operator.task_id!r}",
    )


def _unless_none(check: Any, name: str, value: Any, **options: Any) -> list[FieldProblem]:
    """Check ``value`` unless it is ``None`` (the default: chosen for the user)."""
    if value is None:
        return []
    result: list[FieldProblem] = check(name, value, **options)
    return result


def _unless_template(check: Any, value: Any) -> list[FieldProblem]:
    if isinstance(value, str) and "{{" in value:
        return []  # checked again once rendered
    result: list[FieldProblem] = check(value)
    return result


def sensor_arguments(sensor: Any) -> None:
    """Check ``RivyaGenerationSensor``'s plain arguments when it is built."""
    raise_problems(
        [
            *seconds("poke_interval", sensor.poke_interval),
            *seconds("timeout", sensor.timeout),
            *_unless_template(generation_id, sensor.generation_id),
        ],
        subject=f"arguments of task {sensor.task_id!r}",
    )


def rendered_generate_inputs(operator: Any) -> None:
    """Check ``RivyaGenerateOperator``'s templated arguments once rendered."""
    raise_problems(
        [
            *output_path(operator.output_path),
            *output_dir(operator.output_dir),
            *file_sources("reference_files", operator.reference_files),
        ],
        subject="rendered inputs",
    )
