"""Run one DAG with ``airflow dags test`` in a throw-away AIRFLOW_HOME and report progress.

Airflow runs in a child process, as a user would run it. Progress and task errors come from its
output (kept in a log file) and its SQLite metadata database (read-only).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, BinaryIO

#: How each Airflow task-instance state is shown.
STATE_WORDS = {
    None: "queued",
    "scheduled": "queued",
    "queued": "queued",
    "running": "running",
    "deferred": "waiting",
    "awaiting_input": "waiting",
    "up_for_retry": "retrying",
    "up_for_reschedule": "waiting",
    "success": "done",
    "skipped": "done",
    "failed": "failed",
    "upstream_failed": "failed",
    "removed": "done",
}
#: Airflow settings taken from the caller's environment when set there (the tests run with no
#: retry delay and no worker heartbeat to race); every other AIRFLOW_* variable is left out.
KEPT_SETTINGS = (
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL",
)
_MODULE_PATH = re.compile(r"^(?:\w+\.)+")
_NEW_STATE = re.compile(r"Task instance state updated .*new_state=(\w+)")
_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
# The last line of a traceback, e.g. "rivya_provider.client.errors.X: message".
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Timeout)\w*: .+")


@dataclass(frozen=True)
class TaskState:
    """One task instance as the metadata database sees it."""

    task_id: str
    map_index: int
    label: str | None
    state: str | None
    try_number: int
    seconds: float | None

    @property
    def name(self) -> str:
        """Return ``task`` or ``task[label]`` for a mapped instance."""
        if self.map_index < 0:
            return self.task_id
        return f"{self.task_id}[{self.label or self.map_index}]"

    @property
    def word(self) -> str:
        """Return the state in the words the progress lines use."""
        return STATE_WORDS.get(self.state, self.state or "queued")


@dataclass
class DagTestResult:
    """How a run ended: exit code, final task states, and the last error of each task."""

    returncode: int
    tasks: list[TaskState]
    errors: dict[tuple[str, int], str] = field(default_factory=dict)
    log_path: Path | None = None
    timed_out: bool = False

    @property
    def failed(self) -> list[TaskState]:
        """Return the task instances that did not succeed."""
        return [t for t in self.tasks if t.word != "done"]

    def error_of(self, task: TaskState) -> str:
        """Return the error a task instance last raised, or a placeholder."""
        return self.errors.get((task.task_id, task.map_index), f"ended {task.state or 'unrun'}")


def airflow_env(home: Path, *, dags_folder: Path, connections: Mapping[str, str]) -> dict[str, str]:
    """Return the environment for Airflow commands in ``home`` (SQLite, no example DAGs).

    :param home: an empty folder to use as AIRFLOW_HOME.
    :param dags_folder: the folder holding the DAG to run.
    :param connections: Airflow connections as ``AIRFLOW_CONN_*`` JSON, keyed by conn id.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # SQLite lets one writer in at a time; the others wait up to this many seconds
            # (Python's default is 5) before "database is locked" ends them: with --ui, a
            # scheduler, a dag-processor, a triggerer and task processes share the file.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=30",
            # Connections stored in the database are encrypted with it (Fernet.generate_key()).
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # A failed try is retried after seconds, not Airflow's default five minutes.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
            # `airflow dags test` runs a deferred task's trigger itself, once the task has
            # deferred: there is no worker heartbeat to race, so no result needs holding back.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "0",
        }
    )
    for name in KEPT_SETTINGS:
        if name in os.environ:
            env[name] = os.environ[name]
    for conn_id, uri in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri
    return env


def migrate(env: Mapping[str, str], *, kept_in: Path | None = None) -> None:
    """Create the metadata database; raise with Airflow's output when that fails.

    :param kept_in: a folder keeping a freshly migrated database per Airflow release: the first
        run migrates (about 4 s) and leaves a copy there, later runs copy it (milliseconds).
    """
    database = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    kept = None if kept_in is None else kept_in / f"airflow-{version('apache-airflow')}.db"
    if kept is not None and kept.is_file():
        shutil.copyfile(kept, database)
        return
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=dict(env),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout}{done.stderr}")
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        # Under a temporary name first: a demo started meanwhile never copies half a file.
        partial = kept.with_name(f"{kept.name}.{os.getpid()}.partial")
        shutil.copyfile(database, partial)
        partial.replace(kept)


def store_connections(env: Mapping[str, str], connections: Mapping[str, str]) -> None:
    """Add connections to the metadata database (``airflow connections import``), encrypted.

    The JSON goes through a file only its owner can read, removed at once, so the key is never
    on a command line nor in Airflow's output (which says "Imported connection <id>").

    :param env: from :func:`airflow_env`, after :func:`migrate`.
    :param connections: ``AIRFLOW_CONN_*`` JSON by conn id, as :func:`airflow_env` takes them.
    """
    home = Path(env["AIRFLOW_HOME"])
    fd, name = tempfile.mkstemp(prefix="connections-", suffix=".json", dir=home)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump({conn_id: _importable(c) for conn_id, c in connections.items()}, file)
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "airflow", "connections", "import", name],
            env=dict(env),
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(name)
    if done.returncode or "Could not import" in done.stdout:
        said = f"{done.stdout}{done.stderr}"
        for conn in connections.values():
            if password := json.loads(conn).get("password"):
                said = said.replace(password, "***")
        raise RuntimeError(f"airflow connections import failed:\n{said}")


def _importable(connection: str) -> dict[str, Any]:
    """Return a connection's JSON as ``connections import`` takes it (its extra as a string)."""
    fields: dict[str, Any] = json.loads(connection)
    if isinstance(fields.get("extra"), dict):
        fields["extra"] = json.dumps(fields["extra"])
    return fields


class RunWatcher:
    """Follow a run: Airflow's output says what happens now, its database which tasks exist.

    ``airflow dags test`` runs one task at a time and logs each transition as it happens, while
    the states it writes to SQLite can lag a step behind; the database still lists every task
    instance (mapped ones included) and holds the final states.
    """

    def __init__(self, database: Path, dag_id: str, labels: Mapping[tuple[str, int], str]) -> None:
        """Watch ``dag_id`` in ``database``; name mapped instances after ``labels``."""
        self.database, self.dag_id, self.labels = database, dag_id, labels
        self.errors: dict[tuple[str, int], str] = {}
        self._live: dict[tuple[str, int], str] = {}
        self._current: tuple[str, int] | None = None

    def feed(self, line: str) -> None:
        """Read one line of Airflow's output."""
        if started := _STARTING.search(line):
            self._current = (started[1], int(started[2]))
            self._live[self._current] = "running"
        elif self._current is None:
            return
        elif moved := _NEW_STATE.search(line):
            self._live[self._current] = moved[1]
        elif "[DAG TEST] Trigger completed" in line:
            self._live[self._current] = "running"
        elif _EXCEPTION.match(line):
            self.errors[self._current] = _MODULE_PATH.sub("", line.strip())

    def tasks(self, *, final: bool = False) -> list[TaskState]:
        """Return every task instance, with its live state unless ``final``."""
        tasks = read_tasks(self.database, self.dag_id)
        for index, task in enumerate(tasks):
            key = (task.task_id, task.map_index)
            label = task.label or self.labels.get(key)
            state = task.state if final else self._live.get(key, task.state)
            tasks[index] = replace(task, label=label, state=state)
        return tasks


def dag_test(
    dag_id: str,
    *,
    env: Mapping[str, str],
    conf: Mapping[str, Any],
    logical_date: str,
    log_path: Path,
    on_change: Callable[[float, TaskState, list[TaskState]], None],
    timeout: float,
    labels: Mapping[tuple[str, int], str] | None = None,
) -> DagTestResult:
    """Run ``airflow dags test`` for ``dag_id``; call ``on_change`` whenever a task changes state.

    :param dag_id: the DAG to run.
    :param env: from :func:`airflow_env`, after :func:`migrate`.
    :param conf: the run's conf (its params).
    :param logical_date: the run's logical date, ISO 8601 (``YYYY-MM-DD`` or a timestamp).
    :param log_path: where Airflow's output goes.
    :param on_change: gets the seconds since start, the changed task and all tasks.
    :param timeout: seconds before the run is stopped and reported as failed.
    :param labels: names for mapped task instances, by ``(task_id, map_index)``.
    """
    command = [sys.executable, "-m", "demo.airflow_cli", "dags", "test", dag_id, logical_date]
    command += ["--conf", json.dumps(dict(conf))]
    watcher = RunWatcher(Path(env["AIRFLOW_HOME"]) / "airflow.db", dag_id, labels or {})
    start = time.monotonic()
    seen: dict[tuple[str, int], TaskState] = {}
    timed_out = False
    with log_path.open("wb") as log, log_path.open("rb") as output:
        child = subprocess.Popen(command, env=dict(env), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            while child.poll() is None:
                if time.monotonic() - start > timeout:
                    timed_out = True
                    stop(child)
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=0.5)  # returns as soon as Airflow exits
                _follow(output, watcher)
                _report_changes(watcher.tasks(), seen, start, on_change)
            child.wait()
        except BaseException:  # Ctrl-C too: never leave Airflow running behind
            child.kill()
            raise
        _follow(output, watcher)
    final = watcher.tasks(final=True)
    _report_changes(final, seen, start, on_change)
    return DagTestResult(
        returncode=child.returncode or 0,
        tasks=final,
        errors=watcher.errors,
        log_path=log_path,
        timed_out=timed_out,
    )


def stop(child: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """Stop a child process: SIGTERM, which Airflow may take its time over, then SIGKILL.

    :param child: the process.
    :param grace: seconds it gets to exit after SIGTERM.
    """
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _follow(output: BinaryIO, watcher: RunWatcher) -> None:
    """Feed the watcher the complete lines written since the last call."""
    while line := output.readline():
        if not line.endswith(b"\n"):  # half-written: read it whole next time
            output.seek(-len(line), os.SEEK_CUR)
            return
        watcher.feed(line.decode(errors="replace"))


def _report_changes(
    tasks: list[TaskState],
    seen: dict[tuple[str, int], TaskState],
    start: float,
    on_change: Callable[[float, TaskState, list[TaskState]], None],
) -> None:
    changed = []
    for task in tasks:
        key = (task.task_id, task.map_index)
        before = seen.get(key)
        seen[key] = task
        if before is None and task.word == "queued":
            continue  # counted, not announced
        if before is None or before.word != task.word:
            changed.append(task)
    # Endings first: in one tick a task finishes before the next one starts.
    for task in sorted(changed, key=lambda t: t.word not in ("done", "failed", "retrying")):
        on_change(time.monotonic() - start, task, tasks)


def read_tasks(database: Path, dag_id: str) -> list[TaskState]:
    """Return the DAG's task instances, or none while the database is busy or not there yet."""
    if not database.exists():
        return []
    query = (
        "SELECT task_id, map_index, rendered_map_index, state, try_number,"
        " (julianday(coalesce(end_date, datetime('now'))) - julianday(start_date)) * 86400"
        " FROM task_instance WHERE dag_id = ? ORDER BY task_id, map_index"
    )
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute(query, (dag_id,)).fetchall()
    except sqlite3.Error:  # locked or mid-migration: the next tick reads it
        return []
    return [TaskState(*row) for row in rows]
