"""Answer human-in-the-loop requests as a person does in the Airflow UI, through its REST API.

:func:`serve_airflow_api` runs Airflow's own api-server app (the REST API its UI calls) on
127.0.0.1 in a thread, on the metadata database this process is configured for. A
:class:`Reviewer` lists the open requests (``GET .../hitlDetails?response_received=false``) and
answers each (``PATCH .../taskInstances/{task}/{map_index}/hitlDetails``), as the UI's Required
Actions page does. ``python -m demo.review`` does both until it is stopped: ``python -m demo
--approve`` runs it next to ``airflow dags test``, on the same SQLite database.

It logs in with the simple auth manager's "everyone is admin" mode: for throw-away Airflow homes.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx

#: Starts each line that reports a decision (Airflow's own log lines go to the same stdout).
PREFIX = "  reviewer: "
#: Task instance states that wait for an answer (3.3 parks the task; 3.1 and 3.2 defer it).
WAITING = ("awaiting_input", "deferred")
#: ``decide(task_id, asset)``: the option to choose, e.g. "Approve".
Decide = Callable[[str, str], str]


@dataclass(frozen=True)
class Decision:
    """One answer the reviewer gave."""

    task_id: str
    map_index: int
    asset: str
    option: str


@contextmanager
def serve_airflow_api() -> Iterator[httpx.Client]:
    """Run Airflow's api-server app on a free 127.0.0.1 port; yield a logged-in client for it."""
    # Only while it runs: Airflow processes started meanwhile by this one inherit the setting.
    switch = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"
    before = os.environ.get(switch)
    os.environ[switch] = "True"
    try:
        with _api_server() as base_url:
            token = httpx.get(f"{base_url}/auth/token", timeout=30).raise_for_status().json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
                yield client
    finally:
        if before is None:
            os.environ.pop(switch, None)
        else:
            os.environ[switch] = before


@contextmanager
def _api_server() -> Iterator[str]:
    """Serve the app with uvicorn in a thread; yield its base URL; stop it."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(create_app(apps="core"), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="airflow-api", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"Airflow's api-server app did not start on port {port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Reviewer:
    """Answer the open human-in-the-loop requests of one DAG, in a thread, until stopped.

    The asset a request is about is the part of its subject before ``":"`` (the example DAG's
    subjects read ``"hero-banner: publish this image?"``).
    """

    def __init__(
        self, api: httpx.Client, *, dag_id: str, decide: Decide, settle: float = 0.0
    ) -> None:
        """Answer ``dag_id``'s requests through ``api`` with what ``decide`` returns.

        :param settle: seconds a request must have been waiting before it is answered, as a
            person takes a while: with a scheduler, Airflow 3.3 fails a parked task answered
            before the scheduler has handled the executor's report of it parking.
        """
        self.api, self.dag_id, self.decide, self.settle = api, dag_id, decide, settle
        self._waiting_since: dict[tuple[str, str, int], float] = {}
        self.decisions: list[Decision] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reviewer", daemon=True)

    def __enter__(self) -> Reviewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                for request in self.open_requests():
                    # As the UI offers it: once the task waits. An answer given before the task
                    # parks can be lost on SQLite, which has no row locks to order the two.
                    if request["task_instance"]["state"] in WAITING and self._settled(request):
                        self.answer(request)
            except httpx.HTTPError as exc:  # the API or the database was busy: try again
                self.errors.append(repr(exc))
                print(f"reviewer: {exc!r}; trying again", file=sys.stderr, flush=True)

    def _settled(self, request: dict[str, Any]) -> bool:
        """Whether the request has been seen waiting for :attr:`settle` seconds."""
        ti = request["task_instance"]
        key = (ti["dag_run_id"], ti["task_id"], ti["map_index"])
        since = self._waiting_since.setdefault(key, time.monotonic())
        return time.monotonic() - since >= self.settle

    def open_requests(self) -> list[dict[str, Any]]:
        """Return the requests still waiting for an answer."""
        listed = self.api.get(
            f"/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails",
            params={"response_received": "false"},
        )
        items: list[dict[str, Any]] = listed.raise_for_status().json()["hitl_details"]
        return items

    def answer(self, request: dict[str, Any]) -> Decision:
        """Choose an option for one request and send it as the UI would."""
        ti = request["task_instance"]
        asset = request["subject"].split(":")[0]
        decision = Decision(
            ti["task_id"], ti["map_index"], asset, self.decide(ti["task_id"], asset)
        )
        path = (
            f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
        )
        sent = self.api.patch(path, json={"chosen_options": [decision.option], "params_input": {}})
        if sent.status_code != 409:  # 409: answered already (listed again before it showed)
            sent.raise_for_status()
            self.decisions.append(decision)
            say(f"{decision.option} {asset} ({ti['task_id']})")
        return decision


def say(text: str) -> None:
    """Print one line of the reviewer's in one write, so no log line of another thread splits it."""
    sys.stdout.write(f"{PREFIX}{text}\n")
    sys.stdout.flush()


def reject_first_look(names: set[str]) -> Decide:
    """Return a policy that rejects the first image of ``names`` and approves everything else."""

    def decide(task_id: str, asset: str) -> str:
        return "Reject" if task_id == "review" and asset in names else "Approve"

    return decide


def main(argv: list[str] | None = None) -> int:
    """Serve the API and answer requests until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m demo.review", description=__doc__)
    parser.add_argument("dag_id")
    parser.add_argument("--reject", action="append", default=[], help="asset to reject once")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    decide = reject_first_look(set(args.reject))
    with serve_airflow_api() as api, Reviewer(api, dag_id=args.dag_id, decide=decide):
        say("ready, answering through Airflow's REST API on 127.0.0.1")
        with suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
