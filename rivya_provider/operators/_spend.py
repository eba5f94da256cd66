"""What a DAG run's generations spent, read from their XCom manifests.

Every budget check reads spend the same way: the return values (manifests) of the DAG's
generate tasks, every map index of mapped ones, each generation once
(:func:`rivya_provider.budget.spent_by`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rivya_provider.budget import spent_by


class SpendsCredits:
    """Marks an operator whose XCom manifests count against credit budgets (the generate one)."""


def _operator_class(task: Any) -> Any:
    """The class a task runs: its own, or the one a mapped task expands into."""
    mapped_class = getattr(task, "operator_class", None)
    return mapped_class if isinstance(mapped_class, type) else type(task)


def budget_task_ids(
    dag: Any, *, kind: type = SpendsCredits, own_task_id: str | None = None
) -> list[str]:
    """Return the ids of the DAG's tasks that run ``kind`` (mapped or not), this one included.

    :param dag: the DAG of the running task.
    :param kind: the operator class whose tasks spend credits.
    :param own_task_id: the running generate task, if it is one (its other map indexes count
        too).
    """
    found = [
        task_id
        for task_id, task in getattr(dag, "task_dict", {}).items()
        if issubclass(_operator_class(task), kind)
    ]
    return found if own_task_id is None or own_task_id in found else [*found, own_task_id]


def _values(pulled: Any) -> list[Any]:
    if isinstance(pulled, Mapping) or not isinstance(pulled, Iterable):
        pulled = [pulled]
    return [value for value in pulled if value is not None]


def run_manifests(ti: Any, task_ids: Iterable[str], run_id: str | None = None) -> list[Any]:
    """Return the XCom return values of ``task_ids`` in one run of the running task's DAG.

    Without ``map_indexes`` ``xcom_pull`` returns every map index of every task id (Airflow
    3.0-3.3): mapped and plain tasks alike. The running task instance's own XCom was cleared
    when its try started, so it is not among them.

    :param ti: the running task instance.
    :param task_ids: the generate tasks.
    :param run_id: another run of the DAG (``run_id=`` of ``xcom_pull``); ``None``: this run.
    """
    if run_id is None or run_id == ti.run_id:
        return _values(ti.xcom_pull(task_ids=list(task_ids)))
    return _values(ti.xcom_pull(task_ids=list(task_ids), run_id=run_id))


def run_spend(ti: Any, task_ids: Iterable[str]) -> int | float:
    """Sum what the run's finished generations (their XCom manifests) account for.

    :param ti: the running task instance.
    :param task_ids: the generate tasks of the run.
    """
    return spent_by(run_manifests(ti, task_ids))
