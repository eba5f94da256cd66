"""Helpers of the resilience scenarios: an emulator whose traffic is counted, and DAG runs.

:func:`counted_emulator` serves the emulator behind an ASGI wrapper that counts every API
response by route and status, every create by its Idempotency-Key and every poll by its task
id, so a test can say which requests got the 429s and 5xx (the emulator's own counters only
count routes and statuses apart). :class:`Scenario` triggers a DAG run on a running
:class:`AirflowDeployment` and reads back its task instances, manifests and timings;
:func:`report` prints what a scenario cost.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from rivya_provider.emulator import RunningEmulator
from rivya_provider.emulator.app import backend_of, create_app
from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.server import LOOPBACK, base_url_of, bind_socket
from rivya_provider.emulator.state import DEFAULT_ACCOUNT
from tests.e2e.airflow_processes import AirflowDeployment, AirflowNotReadyError

CREATE = "POST /api/v1/generations"
POLL = "GET /api/v1/generations/{id}"
MODELS = "GET /api/v1/models"
#: Generous waits: they bound a hang, they are not assertions on speed.
DAG_PARSE_TIMEOUT = 120.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


#: Settings that make crash recovery happen within a test's time.
RECOVERY_ENV = {
    # A killed triggerer's triggers move to a live one after this long without a heartbeat.
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}


def route_of(method: str, path: str) -> str | None:
    """The route template of an API path (``None`` for downloads and admin routes)."""
    if not path.startswith("/api/v1/"):
        return None
    parts = path.rstrip("/").split("/")
    # /api/v1/<collection>/<id>[/...]: the id is the only variable segment of Rivya's routes.
    if len(parts) > 4:
        parts[4] = "{id}"
    return f"{method} {'/'.join(parts)}"


@dataclass
class Traffic:
    """What reached the emulator's API, as seen on the wire."""

    by_route: Counter[tuple[str, str]] = field(default_factory=Counter)
    creates_by_key: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    polls_by_task: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    #: Task ids of the answered creates (new or replayed).
    created_ids: set[str] = field(default_factory=set)
    creates_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self.lock:
            self.by_route.clear()
            self.creates_by_key.clear()
            self.polls_by_task.clear()
            self.created_ids.clear()
            self.creates_in_flight = 0

    def started(self, route: str) -> None:
        if route == CREATE:
            with self.lock:
                self.creates_in_flight += 1

    def finished(self, route: str, status: str, *, key: str, path: str, body: bytes) -> None:
        with self.lock:
            self.by_route[route, status] += 1
            if route == CREATE:
                self.creates_in_flight -= 1
                self.creates_by_key[key][status] += 1
                task_id = _task_id(body)
                if task_id:
                    self.created_ids.add(task_id)
            elif route == POLL:
                self.polls_by_task[path.rsplit("/", 1)[-1]][status] += 1

    def status_count(self, status: str, route: str | None = None) -> int:
        """How many responses had ``status`` (``"dropped"``: none was sent), on one route or all."""
        with self.lock:
            return sum(
                n for (r, s), n in self.by_route.items() if s == status and route in (None, r)
            )

    def requests(self, route: str | None = None) -> int:
        with self.lock:
            return sum(n for (r, _), n in self.by_route.items() if route in (None, r))

    def table(self) -> dict[str, dict[str, int]]:
        """Responses by route, then by status."""
        with self.lock:
            table: defaultdict[str, dict[str, int]] = defaultdict(dict)
            for (route, status), count in sorted(self.by_route.items()):
                table[route][status] = count
            return dict(table)


def _task_id(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("data"), dict):
        parsed = parsed["data"]
    task_id = parsed.get("id") if isinstance(parsed, dict) else None
    return task_id if isinstance(task_id, str) else None


class CountingApp:
    """ASGI wrapper that records each API response in a :class:`Traffic`."""

    def __init__(self, app: App, traffic: Traffic) -> None:
        self.app = app
        self.traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope.get("method", ""), scope.get("path", ""))
        if scope["type"] != "http" or route is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = headers.get(b"idempotency-key", b"").decode()
        status = "dropped"
        body = bytearray()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            elif message["type"] == "http.response.body" and route == CREATE:
                body.extend(message.get("body", b""))
            await send(message)

        self.traffic.started(route)
        try:
            await self.app(scope, receive, sending)
        finally:
            self.traffic.finished(route, status, key=key, path=scope["path"], body=bytes(body))


@contextmanager
def counted_emulator(**config: Any) -> Iterator[tuple[RunningEmulator, Traffic]]:
    """Serve an emulator (``EmulatorConfig`` fields) on 127.0.0.1 with its traffic counted."""
    app = create_app(EmulatorConfig(**config))
    backend = backend_of(app)
    traffic = Traffic()
    sock = bind_socket(host=LOOPBACK, port=0)
    server = uvicorn.Server(
        uvicorn.Config(
            CountingApp(app, traffic),
            log_level="warning",
            lifespan="off",
            log_config=None,
            access_log=False,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="rivya-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        running = RunningEmulator(
            base_url=base_url_of(sock),
            api_key=backend.config.api_key,
            state=backend.state,
            backend=backend,
        )
        yield running, traffic
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# -- DAG runs ------------------------------------------------------------------------------------


def check(response: httpx.Response) -> httpx.Response:
    assert response.is_success, f"{response.request.method} {response.url}: {response.text}"
    return response


def as_dict(response: httpx.Response) -> dict[str, Any]:
    body = check(response).json()
    assert isinstance(body, dict), body
    return body


def unpause(deployment: AirflowDeployment, dag_id: str) -> None:
    """Wait until the DAG is parsed, then unpause it."""
    api = deployment.api

    def parsed() -> bool | None:
        return True if api.get(f"/api/v2/dags/{dag_id}").status_code == 200 else None

    try:
        deployment.wait_for(f"the DAG {dag_id} to be parsed", parsed, timeout=DAG_PARSE_TIMEOUT)
    except AirflowNotReadyError as exc:
        errors = api.get("/api/v2/importErrors").text
        raise AirflowNotReadyError(f"{exc}; import errors: {errors}") from None
    check(api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}))


@dataclass
class Scenario:
    """One DAG run of a scenario, from trigger to its end."""

    deployment: AirflowDeployment
    dag_id: str
    run_id: str
    output_dir: Path
    started: float = 0.0
    ended: float = 0.0
    dag_run: dict[str, Any] = field(default_factory=dict)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    #: Every state a task instance was seen in, by map index, in order.
    sightings: defaultdict[int, list[tuple[str | None, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    @property
    def run_path(self) -> str:
        return f"/api/v2/dags/{self.dag_id}/dagRuns/{self.run_id}"

    @property
    def wall_seconds(self) -> float:
        return self.ended - self.started

    def trigger(self) -> None:
        self.started = time.monotonic()
        check(
            self.deployment.api.post(
                f"/api/v2/dags/{self.dag_id}/dagRuns",
                json={
                    "dag_run_id": self.run_id,
                    "logical_date": datetime.now(timezone.utc).isoformat(),
                    "conf": {"output_dir": str(self.output_dir)},
                },
            )
        )

    def poll(self) -> str:
        """Read the run and its task instances once; return the run's state."""
        api = self.deployment.api
        self.dag_run = as_dict(api.get(self.run_path))
        listing = as_dict(api.get(f"{self.run_path}/taskInstances", params={"limit": 100}))
        self.task_instances = sorted(listing["task_instances"], key=lambda ti: ti["map_index"])
        for ti in self.task_instances:
            seen = self.sightings[ti["map_index"]]
            sighting = (ti.get("state"), ti.get("try_number", 0))
            if not seen or seen[-1] != sighting:
                seen.append(sighting)
        state: str = self.dag_run["state"]
        return state

    def wait(
        self,
        *,
        timeout: float,
        until: Callable[[Scenario], bool] | None = None,
        tolerate: Callable[[], None] | None = None,
    ) -> None:
        """Poll until the run ends (or ``until`` holds); raise at the deadline.

        :param tolerate: called instead of the deployment's liveness check, for scenarios that
            kill a component on purpose.
        """
        deadline = time.monotonic() + timeout
        while True:
            (tolerate or self.deployment.check_alive)()
            try:
                state = self.poll()
            except httpx.TransportError:
                state = "unknown"
            if until is not None and until(self):
                return
            if until is None and state in {"success", "failed"}:
                self.ended = time.monotonic()
                return
            if time.monotonic() > deadline:
                raise AirflowNotReadyError(
                    f"{self.dag_id}/{self.run_id} is {state} after {timeout:g}s: "
                    f"{dict(self.sightings)}"
                )
            time.sleep(0.5)

    def ti_path(self, ti: dict[str, Any]) -> str:
        return f"{self.run_path}/taskInstances/{ti['task_id']}"

    def manifest(self, ti: dict[str, Any]) -> dict[str, Any] | None:
        """The task instance's ``return_value`` XCom, if it has one."""
        response = self.deployment.api.get(
            f"{self.ti_path(ti)}/xcomEntries/return_value",
            params={"map_index": ti["map_index"]},
        )
        if response.status_code == 404:
            return None
        value = as_dict(response)["value"]
        return value if isinstance(value, dict) else None

    def tries(self, ti: dict[str, Any]) -> list[dict[str, Any]]:
        path = self.ti_path(ti)
        if ti["map_index"] >= 0:
            path = f"{path}/{ti['map_index']}"
        tries: list[dict[str, Any]] = as_dict(self.deployment.api.get(f"{path}/tries"))[
            "task_instances"
        ]
        return tries

    def explain(self) -> str:
        return f"run {self.dag_run}\nsightings {dict(self.sightings)}"


# -- what a scenario cost ------------------------------------------------------------------------


def report(name: str, scenario: Scenario, emulator: RunningEmulator, traffic: Traffic) -> None:
    counters = emulator.counters()
    generations = max(1, counters["tasks_created"])
    summary = {
        "wall_seconds": round(scenario.wall_seconds, 1),
        "tasks_created": counters["tasks_created"],
        "credits_charged": counters["credits_charged"],
        "idempotent_replays": counters["idempotent_replays"],
        "responses": counters["responses"],
        "api_requests_per_generation": round(traffic.requests() / generations, 1),
        "429_per_generation": round(traffic.status_count("429") / generations, 2),
        "by_route": traffic.table(),
        "most_429_on_one_create_key": _most(traffic.creates_by_key),
        "most_429_on_one_generation_polls": _most(traffic.polls_by_task),
        "tries": sorted(ti["try_number"] for ti in scenario.task_instances),
    }
    sys.stdout.write(f"\n[{name}] {json.dumps(summary, sort_keys=True)}\n")


def _most(statuses: Mapping[str, Counter[str]]) -> int:
    return max((counts["429"] for counts in statuses.values()), default=0)


def paid_generations(emulator: RunningEmulator, traffic: Traffic) -> dict[str, int]:
    """Charged credits by generation id, for every generation a create answered."""
    charged = {}
    for task_id in sorted(traffic.created_ids):
        task = emulator.state.get_task(account=DEFAULT_ACCOUNT, task_id=task_id)
        assert task is not None, task_id
        if task.final_credits:
            charged[task_id] = task.final_credits
    return charged


# -- processes -----------------------------------------------------------------------------------


def parent_pid(pid: int) -> int | None:
    """The parent of a process (Linux ``/proc``), ``None`` once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields after its last ")" are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    current: int | None = pid
    while current and current > 1:
        if current == ancestor:
            return True
        current = parent_pid(current)
    return False


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def task_pid(deployment: AirflowDeployment, ti: dict[str, Any]) -> int | None:
    """The pid of the process running a task instance, if it is one of the scheduler's workers.

    The REST API reports the pid the task process gave when it started; it is only trusted when
    that process still descends from this deployment's scheduler.
    """
    pid = ti.get("pid")
    scheduler = deployment.processes["scheduler"].pid
    if isinstance(pid, int) and pid > 0 and descends_from(pid, scheduler):
        return pid
    return None
