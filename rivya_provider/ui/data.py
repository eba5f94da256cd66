"""Read the generations of DAG runs from the XCom manifests and task instances of Rivya
generate tasks.

Only this module touches Airflow's metadata database; the pages get plain dataclasses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rivya_provider.manifest import GenerationManifest, ResultFile
from rivya_provider.outputs import result_name
from rivya_provider.ui.board import Board, Generation, TaskRow, build_board
from rivya_provider.ui.daily import CHART_DAYS, DailySpend, daily_spend, window

log = logging.getLogger(__name__)

#: The XCom key of a task's return value, where the generate operator leaves its manifest.
RETURN_VALUE_KEY = "return_value"
#: Files the view serves: images only (a manifest may list other result types).
SERVED_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})


@dataclass
class DagSpend:
    """Credits charged by one DAG's generations over the runs looked at."""

    dag_id: str
    runs: set[str] = field(default_factory=set)
    generations: int = 0
    credits: float = 0.0


def as_manifest(value: Any) -> GenerationManifest | None:
    """Return ``value`` as a manifest when it is one, else ``None``.

    :param value: a deserialised XCom return value.
    """
    return GenerationManifest.read(value)


def number_generations(rows: Iterable[tuple[str, int, Any]]) -> list[Generation]:
    """Keep the manifests among ``(task_id, map_index, value)`` rows, numbered in a stable order.

    The number is what file URLs name: it is the position in the run's list, sorted by task id and
    map index, so it is the same on every request for the same run.

    :param rows: return values of a run's task instances.
    """
    found = []
    for task_id, map_index, value in sorted(rows, key=lambda row: (row[0], row[1])):
        manifest = as_manifest(value)
        if manifest is not None:
            found.append((task_id, map_index, manifest))
    return [Generation(n, task, index, m) for n, (task, index, m) in enumerate(found)]


def local_file(result: ResultFile) -> Path | None:
    """Return the local path of a copied result, or ``None`` for remote storage.

    :param result: a file entry of a manifest.
    """
    path = result.path
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif "://" in path:
        return None
    return Path(path) if Path(path).is_absolute() else None


def stored_copy(result: ResultFile) -> Any:
    """Return where a copied result can be read: a local :class:`~pathlib.Path`, an
    ``ObjectStoragePath`` (``s3://conn_id@bucket/key``..., read through the connection it
    names), or ``None`` (a relative path, or no copy).

    :param result: a file entry of a manifest.
    """
    local = local_file(result)
    if local is not None or not is_remote(result):
        return local
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    try:
        return ObjectStoragePath(result.path)
    except Exception:  # a store nothing here can open is one the view cannot serve
        return None


def read_result(manifest: GenerationManifest, *, file_index: int) -> bytes | None:
    """Return the bytes of a manifest's image copy, or ``None`` when it may not be served.

    Served only when the file still is what the generate operator wrote: at the local path or
    object-store path the manifest lists, under the name the operator gives that result, an image
    type, and the recorded size and SHA-256 (no more than the recorded size is read). A crafted
    return value cannot point the view at another file.

    :param manifest: a generation's manifest.
    :param file_index: the position of the file in ``manifest.files``.
    """
    if not 0 <= file_index < len(manifest.files):
        return None
    result = manifest.files[file_index]
    if result.content_type not in SERVED_TYPES:
        return None
    copy = stored_copy(result)
    expected = result_name(manifest.generation_id, file_index, result.url, result.content_type)
    if copy is None or copy.name != expected:
        return None
    try:
        # A local path must be a regular file: opening a FIFO or a device would hang or stream.
        if isinstance(copy, Path) and not copy.is_file():
            return None
        with copy.open("rb") as handle:
            data: bytes = handle.read(result.size_bytes + 1)
    except Exception as exc:  # any store's failure to read means "not served"
        log.warning("Rivya view: %s not read: %s", copy.name, type(exc).__name__)
        return None
    if len(data) != result.size_bytes:
        return None
    return data if hashlib.sha256(data).hexdigest() == result.sha256 else None


def is_remote(result: ResultFile) -> bool:
    """Whether a result was copied to an object store (``s3://``...; not ``file://``)."""
    scheme, found, _ = result.path.partition("://")
    return bool(found) and scheme.lower() not in ("file", "local")


def is_stored(result: ResultFile) -> bool:
    """Whether a result was copied somewhere the view can read it (a local folder or a store)."""
    return local_file(result) is not None or is_remote(result)


def run_generations(*, dag_id: str, run_id: str) -> list[Generation]:
    """Return the generations of one DAG run, read from its XCom return values.

    :param dag_id: the DAG.
    :param run_id: the run.
    """
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = _return_values(session, dag_id=dag_id, run_id=run_id)
    return number_generations(rows)


def run_board(*, dag_id: str, run_id: str) -> Board:
    """Return the review board of one DAG run: its generate task instances, with or without a
    manifest yet, and the human-in-the-loop answers about them.

    :param dag_id: the DAG.
    :param run_id: the run.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = _return_values(session, dag_id=dag_id, run_id=run_id)
        run_state = session.scalar(
            select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
        instances = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        tasks = [
            TaskRow(
                task_id=ti.task_id,
                map_index=ti.map_index,
                state=_text(ti.state),
                operator=ti.operator,
                rendered_map_index=ti.rendered_map_index,
                try_number=ti.try_number or 0,
                started=ti.start_date,
            )
            for ti in instances
        ]
        # The model of a generation still without a manifest: from its rendered arguments.
        rendered = session.execute(
            select(Rendered.task_id, Rendered.map_index, Rendered.rendered_fields).where(
                Rendered.dag_id == dag_id, Rendered.run_id == run_id
            )
        ).all()
    models = {
        (task_id, map_index): str(fields["model"])
        for task_id, map_index, fields in rendered
        if isinstance(fields, dict) and isinstance(fields.get("model"), str)
    }
    tasks = [replace(t, model=models.get((t.task_id, t.map_index))) for t in tasks]
    return build_board(
        run_state=_text(run_state),
        tasks=tasks,
        generations=number_generations(rows),
        returns={(task_id, map_index): value for task_id, map_index, value in rows},
    )


def _text(state: Any) -> str | None:
    """A state enum's value (``"running"``), or ``None`` for no state."""
    return None if state is None else str(getattr(state, "value", state))


def _return_values(session: Any, *, dag_id: str, run_id: str) -> list[tuple[str, int, Any]]:
    """Return ``(task_id, map_index, value)`` of every return value XCom of the run."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
        XComModel.dag_id == dag_id,
        XComModel.run_id == run_id,
        XComModel.key == RETURN_VALUE_KEY,
    )
    return [
        (task_id, map_index, XComModel.deserialize_value(_Value(value)))
        for task_id, map_index, value in session.execute(query)
    ]


def spend_per_dag(*, dag_ids: set[str], runs_per_dag: int) -> list[DagSpend]:
    """Sum the credits charged by generations over each DAG's most recent runs.

    :param dag_ids: the DAGs to look at (those the user may read).
    :param runs_per_dag: how many of each DAG's latest runs count.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    spends: dict[str, DagSpend] = {}
    with create_session() as session:
        for chunk in _chunks(dag_ids):
            # Each DAG's latest runs by a window function: MySQL refuses LIMIT inside IN.
            recent = (
                select(
                    DagRun.dag_id,
                    DagRun.run_id,
                    func.row_number()
                    .over(partition_by=DagRun.dag_id, order_by=DagRun.id.desc())
                    .label("recency"),
                )
                .where(DagRun.dag_id.in_(chunk))
                .subquery()
            )
            query = (
                select(XComModel.dag_id, XComModel.run_id, XComModel.value)
                .join(
                    recent,
                    (recent.c.dag_id == XComModel.dag_id) & (recent.c.run_id == XComModel.run_id),
                )
                .where(recent.c.recency <= runs_per_dag, XComModel.key == RETURN_VALUE_KEY)
            )
            for dag_id, run_id, value in session.execute(query):
                manifest = as_manifest(XComModel.deserialize_value(_Value(value)))
                if manifest is None:
                    continue
                spend = spends.setdefault(dag_id, DagSpend(dag_id=dag_id))
                spend.runs.add(run_id)
                spend.generations += 1
                spend.credits += float(manifest.charged_credits)
    return sorted(spends.values(), key=lambda s: (-s.credits, s.dag_id))


def spend_per_day(*, dag_ids: set[str], now: datetime, days: int = CHART_DAYS) -> DailySpend:
    """Sum the credits charged per DAG and UTC day by the runs whose ``run_after`` falls in
    the ``days`` UTC days up to ``now``'s (see :mod:`rivya_provider.ui.daily`).

    :param dag_ids: the DAGs to look at (those the user may read).
    :param now: the current time.
    :param days: how many UTC days the chart covers.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    start, end = window(now, days=days)
    charges: list[tuple[str, datetime, float]] = []
    with create_session() as session:
        for chunk in _chunks(dag_ids):
            query = (
                select(DagRun.dag_id, DagRun.run_after, XComModel.value)
                .join(
                    XComModel,
                    (XComModel.dag_id == DagRun.dag_id) & (XComModel.run_id == DagRun.run_id),
                )
                .where(
                    DagRun.dag_id.in_(chunk),
                    DagRun.run_after >= start,
                    DagRun.run_after < end,
                    XComModel.key == RETURN_VALUE_KEY,
                )
            )
            for dag_id, run_after, value in session.execute(query):
                manifest = as_manifest(XComModel.deserialize_value(_Value(value)))
                if manifest is not None:
                    charges.append((dag_id, run_after, float(manifest.charged_credits)))
    return daily_spend(charges, now=now, days=days)


#: DAG ids per query: well under SQLite's smallest bound on a statement's parameters (999).
DAG_IDS_PER_QUERY = 500


def _chunks(dag_ids: set[str]) -> Iterator[list[str]]:
    """The DAG ids in sorted batches of :data:`DAG_IDS_PER_QUERY`."""
    ordered = sorted(dag_ids)
    for start in range(0, len(ordered), DAG_IDS_PER_QUERY):
        yield ordered[start : start + DAG_IDS_PER_QUERY]


@dataclass(frozen=True)
class _Value:
    """What ``XComModel.deserialize_value`` reads: an object with a ``value``."""

    value: Any
