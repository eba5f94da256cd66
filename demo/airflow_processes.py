"""Airflow's long-running processes on the demo's AIRFLOW_HOME, for ``python -m demo --ui``.

The api-server alone shows a run, but not a true one: its health page reports the missing
scheduler, triggerer and dag-processor, and a run triggered in the UI would wait forever. So
:func:`airflow_running` starts all four on the run's SQLite database, the scheduler with the
LocalExecutor (its task processes are its children), each in its own session so that a process
group holds a component and everything it starts; it stops every group (SIGTERM, then SIGKILL)
when the block ends. Nothing listens beyond 127.0.0.1: the api-server binds to loopback and the
log servers are not started (``--skip-serve-logs``); the api-server reads the task logs from the
shared AIRFLOW_HOME instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]

#: The components and their command lines (``airflow <args>``).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server",),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
#: The entries of ``GET /api/v2/monitor/health`` that must say ``healthy``.
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
#: Seconds between SIGTERM and SIGKILL of the components' process groups.
STOP_GRACE = 15.0

Processes = dict[str, "subprocess.Popen[bytes]"]


def output_of(folder: Path, name: str) -> Path:
    """Return the file holding a component's output, ``<folder>/<name>.log``."""
    return folder / f"{name}.log"


@contextmanager
def airflow_running(env: Mapping[str, str], *, folder: Path) -> Iterator[Processes]:
    """Start every component of :data:`COMPONENTS`; yield them by name; stop them all at the end.

    :param env: the environment of all of them (one database, one JWT secret, one API port).
    :param folder: where each one's output goes (:func:`output_of`).
    """
    processes: Processes = {}
    try:
        for name, args in COMPONENTS.items():
            with output_of(folder, name).open("ab") as out:
                processes[name] = subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", "airflow", *args],
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # Its own group: Ctrl-C reaches the demo only, which then stops each
                    # component together with its workers and task processes.
                    start_new_session=True,
                )
        yield processes
    finally:
        stop_all(processes)


def stop_all(processes: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, then SIGKILL whatever is left after :data:`STOP_GRACE`.

    A task process has a process group of its own (its supervisor signals the task and its
    children together), which the component's group does not hold: the processes below each
    component are noted before the SIGTERM, and those still running get the SIGKILL as well.
    """
    below = [child for process in processes.values() for child in _descendants(process.pid)]
    try:
        for process in processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in processes.values():
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        # A leader may be gone while its workers linger, or a second Ctrl-C cut the wait
        # short: kill every group regardless.
        for process in processes.values():
            _signal_group(process, signal.SIGKILL)
            process.wait()
        for child in below:
            with suppress(psutil.Error):
                child.kill()  # psutil checks it is still the process it noted, not a reused pid


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        found: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    except psutil.Error:  # gone already
        return []
    return found


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # start_new_session: the group id is the leader's pid


def exited(processes: Mapping[str, subprocess.Popen[bytes]]) -> str | None:
    """Return the name of a component that has exited, or ``None`` while all run."""
    return next((name for name, p in processes.items() if p.poll() is not None), None)


def unhealthy_parts(health: Mapping[str, object]) -> list[str]:
    """Return the parts of a health answer that are not ``healthy`` (all of them must be).

    :param health: the JSON of ``GET /api/v2/monitor/health``.
    """
    return [
        name
        for name in HEALTH_PARTS
        if not isinstance(part := health.get(name), dict) or part.get("status") != "healthy"
    ]


def wait_healthy(
    processes: Mapping[str, subprocess.Popen[bytes]], *, base_url: str, timeout: float
) -> bool:
    """Wait until the api-server reports every part healthy; ``False`` if one exits or time is up.

    :param processes: from :func:`airflow_running`.
    :param base_url: the api-server, ``http://127.0.0.1:<port>``.
    :param timeout: seconds to wait at most.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while exited(processes) is None and time.monotonic() < deadline:
            with suppress(httpx.TransportError, ValueError):
                answer = client.get("/api/v2/monitor/health")
                if answer.status_code == 200 and not unhealthy_parts(answer.json()):
                    return True
            time.sleep(0.5)
    return False
