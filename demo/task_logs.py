"""The task logs of the demo's run, written where the Airflow UI's Logs tab reads them.

``airflow dags test`` runs every task in its one process and prints the task's log lines among
its own output (the demo keeps it in ``airflow.log``): it writes none of the per-task log
files a worker writes. The api-server looks for those under ``[logging] base_log_folder`` and
then asks the worker's log server, which no process of the demo runs. This module cuts the
output at the ``[DAG TEST]`` lines that open and close each task and writes every task's lines
to the file a worker would have written (Airflow's default ``log_filename_template``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_ENDING = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")


def log_file(
    base: Path, *, dag_id: str, run_id: str, task_id: str, map_index: int, attempt: int
) -> Path:
    """Return where Airflow keeps one attempt's log, by its default ``log_filename_template``.

    :param base: ``[logging] base_log_folder``.
    :param map_index: ``-1`` for a task that is not mapped.
    :param attempt: the try number, from 1.
    """
    folder = base / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder /= f"map_index={map_index}"
    return folder / f"attempt={attempt}.log"


def split_by_task(lines: Iterable[str]) -> dict[tuple[str, int, int], list[str]]:
    """Return each task attempt's lines of ``airflow dags test``'s output.

    :param lines: the output, line by line.
    :return: lines by ``(task_id, map_index, attempt)``; an attempt is each start of the task.
    """
    attempts: dict[tuple[str, int, int], list[str]] = {}
    starts: dict[tuple[str, int], int] = {}
    current: list[str] | None = None
    for line in lines:
        if started := _STARTING.search(line):
            task = (started[1], int(started[2]))
            starts[task] = starts.get(task, 0) + 1
            current = attempts.setdefault((*task, starts[task]), [])
        if current is not None:
            current.append(line)
        if _ENDING.search(line):
            current = None  # Airflow's own lines until the next task starts
    return attempts


def write_task_logs(output: Path, *, base: Path, dag_id: str, run_id: str) -> int:
    """Write the task logs of the run from ``airflow dags test``'s output; return how many.

    :param output: the run's ``airflow.log``.
    :param base: ``[logging] base_log_folder`` of the api-server.
    :param dag_id: the DAG of the run.
    :param run_id: the run.
    """
    with output.open(encoding="utf-8", errors="replace") as text:
        attempts = split_by_task(text)
    for (task_id, map_index, attempt), lines in attempts.items():
        where = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id}
        path = log_file(base, **where, map_index=map_index, attempt=attempt)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")
    return len(attempts)
