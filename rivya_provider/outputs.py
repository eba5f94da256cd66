"""Copy generation results to any ObjectStoragePath with safe, deterministic names.

Local destinations are written through a hidden ``.<id>-<n>.download`` file renamed into place;
object stores get a single upload per file, which they commit atomically when it completes.
"""

from __future__ import annotations

import mimetypes
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import ObjectStoragePath

from rivya_provider.client import GenerationTask, RivyaClient, RivyaError, safe_part
from rivya_provider.manifest import ResultFile

_LOCAL_PROTOCOLS = {"", "file", "local"}
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


def folder_name(text: str) -> str:
    """Return ``text`` (e.g. a DAG run id) as one safe folder name: only ``[A-Za-z0-9._-]``.

    Output folders named after the run id keep each run's files apart, even for two runs on one
    day: ``output_path="{{ params.output_dir }}/{{ run_id | folder_name }}"`` with
    ``user_defined_filters={"folder_name": folder_name}`` on the DAG.
    """
    return safe_part(text, fallback="run")


def run_folder(output_dir: str, run_after: datetime, run_id: str) -> str:
    """Return the folder of one DAG run under ``output_dir``: ``<output_dir>/<date>/<run id>``.

    The date is the run's ``run_after`` (``YYYY-MM-DD``, as ``{{ dag_run.run_after | ds }}``
    renders it), which every run has, unlike ``ds`` (a run triggered without a logical date
    has none); the run id, through :func:`folder_name`, keeps two runs of one day apart.
    """
    return f"{str(output_dir).rstrip('/')}/{run_after:%Y-%m-%d}/{folder_name(run_id)}"


def result_name(task_id: str, index: int, url: str, content_type: str | None = None) -> str:
    """Name result ``index`` of ``task_id``: only ``[A-Za-z0-9._-]``, stable across reruns."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if content_type:
        suffix = _EXTENSIONS.get(content_type.split(";")[0].strip()) or suffix
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = mimetypes.guess_extension(content_type or "") or ".bin"
    stem = safe_part(task_id)
    return f"{stem}-{index}{suffix}"


class ResultCopyError(RivyaError):
    """A succeeded (paid) generation's results could not be copied; the next try reuses it."""


def _staging_name(task_id: str, index: int) -> str:
    """A hidden download name built from sanitised parts only (the id comes from the server)."""
    return f".{safe_part(task_id)}-{index}.download"


def copy_results(
    client: RivyaClient,
    task: GenerationTask,
    output_path: str | ObjectStoragePath,
    *,
    max_bytes: int,
) -> list[ResultFile]:
    """Download every result URL of ``task`` into ``output_path`` and describe the copies.

    Each download retries transient failures within the client's retry budget.

    :raises ResultCopyError: saying the generation is paid and a retry reuses it at no charge.
    """
    folder = ObjectStoragePath(output_path)
    local = folder.protocol in _LOCAL_PROTOCOLS
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    with tempfile.TemporaryDirectory(prefix="rivya-") as scratch:
        for index, url in enumerate(task.result_urls):
            staging = Path(folder.path if local else scratch) / _staging_name(task.id, index)
            try:
                downloaded = client.download(url, staging, max_bytes=max_bytes)
            except (RivyaError, OSError) as exc:
                raise ResultCopyError(
                    f"generation {task.id} succeeded and is paid ({task.final_credits:g} "
                    f"credits), but copying result {index} ({url}) to {output_path} failed: "
                    f"{exc}. A retry of this task reuses the generation at no new charge"
                ) from exc
            target = folder / result_name(task.id, index, url, downloaded.content_type)
            if local:
                staging.replace(target.path)
            else:
                with staging.open("rb") as source, target.open("wb") as sink:  # type: ignore[no-untyped-call]
                    shutil.copyfileobj(source, sink)
                staging.unlink()
            copies.append(
                ResultFile(
                    path=str(target),
                    url=url,
                    size_bytes=downloaded.size_bytes,
                    content_type=downloaded.content_type,
                    sha256=downloaded.sha256,
                )
            )
    return copies
