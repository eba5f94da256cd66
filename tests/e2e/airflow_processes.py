"""A real Airflow 3 deployment for end-to-end tests: SQLite, LocalExecutor, four processes.

(``tests/e2e/production.py`` turns it into PostgreSQL, Celery and several workers and triggerers
through ``extra_env``, ``commands`` and ``component_env``.)

:func:`run_airflow` migrates a fresh metadata DB in its own ``AIRFLOW_HOME``, starts
``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` (each in its own session, so
their worker children are stopped with them), waits until the API reports all of them healthy,
and stops them (SIGTERM, then SIGKILL) when the block ends. Nothing listens beyond 127.0.0.1:
the API server binds to loopback and the log servers are not started (``--skip-serve-logs``);
the API server reads the task logs from the shared ``AIRFLOW_HOME`` instead.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography.fernet import Fernet

T = TypeVar("T")

#: The long-running Airflow components and their CLI arguments.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server", "--workers", "1"),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
#: The entry of ``GET /api/v2/monitor/health`` that must say ``healthy`` for each component that
#: has one (besides ``metadatabase``; the API server is the one answering).
HEALTH_PART_OF = {
    "scheduler": "scheduler",
    "triggerer": "triggerer",
    "dag-processor": "dag_processor",
}


def kind_of(name: str) -> str:
    """A component's kind: ``triggerer-2`` is a ``triggerer``."""
    base, _, number = name.rpartition("-")
    return base if base and number.isdigit() else name


class AirflowNotReadyError(RuntimeError):
    """A component died, or something did not happen before its deadline."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: Variables of this process that must not reach Airflow's: its own Airflow settings (and
#: connections), pytest's (Airflow changes behaviour under ``PYTEST_CURRENT_TEST``) and coverage's
#: subprocess hooks (which would slow every Airflow process down).
FOREIGN_ENV_PREFIXES = ("AIRFLOW", "_AIRFLOW", "PYTEST_", "COV_CORE_", "COVERAGE_PROCESS_")


def airflow_env(*, home: Path, dags_folder: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of every Airflow process: this one's, cleaned, plus the deployment's."""
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV_PREFIXES)}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            # SQLite lets one writer in at a time; the others wait up to ``timeout`` seconds
            # (Python's default is 5) before "database is locked" ends the process that waited:
            # a dag-processor lost that way under the 20 task processes of `make bench`.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=30",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # the test unpauses its DAG
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            # The worker's supervisor notices its task process exited only when its select()
            # times out, after up to this many seconds (default 5). Until it reports the deferring
            # workload done, a trigger that fires quickly races it: Airflow 3.3.2 can then requeue
            # the resumed TI and, in the same scheduler loop, take the stale "success" event of the
            # deferring workload for a task killed externally (marking it up_for_retry).
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # No SCHEDULER_IDLE_SLEEP_TIME: Airflow's 1 s. At 0.2 s an idle scheduler took 14 %
            # of a core (5 % at 1 s), CPU that the rest of a test run needs.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class AirflowDeployment:
    """A running deployment: its home, environment, REST client and processes."""

    root: Path
    home: Path
    env: dict[str, str]
    api: httpx.Client
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    components: tuple[str, ...] = tuple(COMPONENTS)
    #: CLI arguments of components that are not in :data:`COMPONENTS` (or differ).
    commands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Environment of one component on top of the deployment's (a worker's own HOME...).
    component_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    @property
    def fernet(self) -> Fernet:
        return Fernet(self.env["AIRFLOW__CORE__FERNET_KEY"].encode())

    def output_of(self, name: str) -> Path:
        """The file holding a component's (or CLI command's) stdout and stderr."""
        return self.root / f"{name}.out"

    def output_files(self) -> list[Path]:
        return sorted(self.root.glob("*.out"))

    def cli(self, *args: str, timeout: float = 180) -> None:
        """Run ``airflow <args>`` to completion; its output goes to ``<args[0]>.out``."""
        with self.output_of("-".join(args[:2])).open("ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode:
            raise AirflowNotReadyError(f"airflow {' '.join(args)} exited {done.returncode}")

    def start(self) -> None:
        for name in self.components:
            self.start_component(name)

    def start_component(self, name: str) -> None:
        """Start one component in its own session; its output is appended to ``<name>.out``."""
        command = self.commands.get(name) or COMPONENTS[kind_of(name)]
        with self.output_of(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *command],
                env={**self.env, **self.component_env.get(name, {})},
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_component(self, name: str) -> None:
        """SIGKILL a component's whole process group (its workers too), as a crash would."""
        process = self.processes[name]
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=30)

    def restart_component(self, name: str) -> None:
        """Kill a component with SIGKILL and start it again."""
        self.kill_component(name)
        self.start_component(name)

    def check_alive(self) -> None:
        """Raise if a component has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AirflowNotReadyError(f"airflow {name} exited with {process.returncode}")

    def wait_for(
        self, what: str, probe: Callable[[], T | None], *, timeout: float, every: float = 0.25
    ) -> T:
        """Call ``probe`` until it returns something other than ``None``; return that.

        Transport errors count as "not yet"; a dead component or the deadline raise.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                result = probe()
            except httpx.TransportError:
                result = None
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise AirflowNotReadyError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(every)

    def wait_healthy(self, *, timeout: float = 90) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            response = self.api.get("/api/v2/monitor/health")
            if response.status_code != 200:
                return None
            health: dict[str, Any] = response.json()
            wanted = [
                "metadatabase",
                *{
                    HEALTH_PART_OF[kind_of(c)]
                    for c in self.components
                    if kind_of(c) in HEALTH_PART_OF
                },
            ]
            parts = [health.get(part) or {} for part in wanted]
            return health if all(p.get("status") == "healthy" for p in parts) else None

        return self.wait_for("all components healthy", probe, timeout=timeout)

    def stop(self, *, grace: float = 20) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after ``grace``."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            # The leader may be gone while its workers linger: kill the whole group regardless.
            _signal_group(process, signal.SIGKILL)
            if process.poll() is None:
                process.wait(timeout=10)

    def diagnostics(self, lines: int = 60) -> str:
        """The last lines of every component's output, for failure reports."""
        parts = []
        for path in self.output_files():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(text)} lines) -----\n" + "\n".join(text))
        return "\n".join(parts)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # start_new_session: the group id is the leader's pid


@contextmanager
def run_airflow(
    root: Path,
    *,
    dags_folder: Path,
    extra_env: Mapping[str, str] | None = None,
    components: Sequence[str] = tuple(COMPONENTS),
    commands: Mapping[str, tuple[str, ...]] | None = None,
    component_env: Mapping[str, dict[str, str]] | None = None,
) -> Iterator[AirflowDeployment]:
    """Migrate a fresh DB under ``root/airflow-home``, start the components, yield when healthy.

    :param root: an empty folder for the home and the components' output files.
    :param dags_folder: the DAG files to serve.
    :param extra_env: more environment for every process (connections, DAG settings...).
    :param components: the components to start (all by default; the UI alone needs the API server).
    :param commands: CLI arguments of components beyond :data:`COMPONENTS` (``worker-1``...).
    :param component_env: more environment for one component.
    """
    home = root / "airflow-home"
    home.mkdir(parents=True)
    env = airflow_env(home=home, dags_folder=dags_folder, extra=extra_env or {})
    with httpx.Client(base_url=f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}", timeout=30) as api:
        deployment = AirflowDeployment(
            root=root,
            home=home,
            env=env,
            api=api,
            components=tuple(components),
            commands=dict(commands or {}),
            component_env=dict(component_env or {}),
        )
        try:
            deployment.cli("db", "migrate")
            deployment.start()
            deployment.wait_healthy()
            yield deployment
        except BaseException:
            sys.stderr.write(deployment.diagnostics() + "\n")
            raise
        finally:
            deployment.stop()
