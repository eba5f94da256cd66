"""A real Airflow deployment with the Rivya UI plugin, two users and finished Rivya runs.

Shared by ``test_ui_plugin.py`` and ``scripts/screenshots.py``: an emulator, the api-server with the
:mod:`tests.e2e.ui_auth` auth manager (``admin`` reads every DAG, ``outsider`` all but
``rivya_ui_private``), and one finished run of each DAG in ``ui_dags``; a reviewer answers the
review DAG's human-in-the-loop requests through the REST API, rejecting the banner's first look.
Last, a run of ``rivya_ui_live`` whose generation the emulator keeps processing: its task waits,
deferred, while the tests look at it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from demo.review import Reviewer, reject_first_look
from rivya_provider.emulator import RunningEmulator, run_emulator
from tests.e2e.airflow_processes import AirflowDeployment, AirflowNotReadyError, run_airflow
from tests.e2e.ui_dags.rivya_ui import REJECTED_ONCE
from tests.emulator_fixtures import connection_json

if TYPE_CHECKING:
    from playwright.sync_api import Frame, Page

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = Path(__file__).resolve().parent / "ui_dags"
GALLERY, PRIVATE, REVIEW = "rivya_ui_gallery", "rivya_ui_private", "rivya_ui_review"
LIVE = "rivya_ui_live"
RUN_IDS = {
    GALLERY: "ui_gallery_run",
    PRIVATE: "ui_private_run",
    REVIEW: "ui_review_run",
    LIVE: "ui_live_run",
}
#: How each run ends: the review DAG has a generation that fails on purpose.
END_STATES = {GALLERY: "success", PRIVATE: "success", REVIEW: "failed"}
USERS = ("admin", "outsider")
START_CREDITS = 1000
#: How long a review request waits before the test's reviewer answers it, as a person would
#: (see :class:`demo.review.Reviewer`); generous for a loaded machine's scheduler.
REVIEW_SETTLE = 8.0
#: Generous waits: these bound a hang, they are not assertions on speed.
PARSE_TIMEOUT, RUN_TIMEOUT = 120.0, 240.0


@dataclass
class UiScenario:
    """The running deployment, its users' passwords and the finished runs."""

    deployment: AirflowDeployment
    emulator: RunningEmulator
    output_dir: Path
    passwords: dict[str, str]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.deployment.api_url

    def token(self, username: str) -> str:
        """Sign ``username`` in through the API and return the JWT."""
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": self.passwords[username]},
            timeout=30,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def client(self, username: str | None) -> httpx.Client:
        """An HTTP client of the api-server, signed in as ``username`` (``None``: anonymous)."""
        headers = {"Authorization": f"Bearer {self.token(username)}"} if username else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


def _auth_env(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The settings of the test auth manager, and the users' passwords (written to a file)."""
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    password_file = root / "passwords.json"
    password_file.write_text(json.dumps(passwords))
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {
        "PYTHONPATH": python_path,
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.e2e.ui_auth.DenyOneDagAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in USERS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
    }
    return env, passwords


@contextmanager
def run_ui_scenario(root: Path) -> Iterator[UiScenario]:
    """Start the emulator and Airflow under ``root``, run both DAGs, yield; stop everything after.

    :param root: an empty folder for Airflow's home, process output and the copied images.
    """
    output_dir = root / "images"
    deployment_root = root / "deployment"
    deployment_root.mkdir(parents=True)
    auth_env, passwords = _auth_env(root)
    with run_emulator(
        api_key=f"rvya_sk_ui_{secrets.token_hex(12)}",
        credits=START_CREDITS,
        queued_seconds=0.2,
        processing_seconds=1.0,
    ) as emulator:
        env = {
            **auth_env,
            "AIRFLOW_CONN_RIVYA_DEFAULT": connection_json(emulator),
            "RIVYA_OUTPUT_DIR": str(output_dir),
        }
        with run_airflow(deployment_root, dags_folder=DAGS_FOLDER, extra_env=env) as deployment:
            scenario = UiScenario(deployment, emulator, output_dir, passwords)
            deployment.api.headers["Authorization"] = f"Bearer {scenario.token('admin')}"
            # The review run starts after the others: fewer tasks at once on a small machine.
            for dag_id in (GALLERY, PRIVATE):
                _trigger(deployment, dag_id, RUN_IDS[dag_id])
            for dag_id in (GALLERY, PRIVATE):
                scenario.runs[dag_id] = _finished(deployment, dag_id, RUN_IDS[dag_id])
            _trigger(deployment, REVIEW, RUN_IDS[REVIEW])
            with Reviewer(
                deployment.api,
                dag_id=REVIEW,
                decide=reject_first_look({REJECTED_ONCE}),
                settle=REVIEW_SETTLE,
            ):
                scenario.runs[REVIEW] = _finished(deployment, REVIEW, RUN_IDS[REVIEW])
            # From now on every generation processes for an hour: the live run stays deferred.
            emulator.set_faults(slow_task_rate=1.0, slow_task_extra_seconds=3600.0)
            _trigger(deployment, LIVE, RUN_IDS[LIVE])
            _deferred(deployment, LIVE, RUN_IDS[LIVE])
            yield scenario


def _trigger(deployment: AirflowDeployment, dag_id: str, run_id: str) -> None:
    """Wait until ``dag_id`` is parsed, unpause it and trigger ``run_id``."""
    api = deployment.api

    def parsed() -> bool | None:
        return True if api.get(f"/api/v2/dags/{dag_id}").status_code == 200 else None

    try:
        deployment.wait_for(f"{dag_id} to be parsed", parsed, timeout=PARSE_TIMEOUT)
    except AirflowNotReadyError as exc:
        errors = api.get("/api/v2/importErrors").text
        raise AirflowNotReadyError(f"{exc}; import errors: {errors}") from None
    api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    api.post(
        f"/api/v2/dags/{dag_id}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": datetime.now(timezone.utc).isoformat()},
    ).raise_for_status()


def _finished(deployment: AirflowDeployment, dag_id: str, run_id: str) -> dict[str, Any]:
    """Wait for ``run_id`` to end and return it; it must have ended as :data:`END_STATES` says."""
    api = deployment.api

    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        return run if run.get("state") in {"success", "failed"} else None

    run = deployment.wait_for(f"{dag_id} to finish", finished, timeout=RUN_TIMEOUT, every=0.5)
    if run["state"] != END_STATES[dag_id]:
        raise AirflowNotReadyError(f"{dag_id} run {run_id} ended {run['state']}")
    return run


def _deferred(deployment: AirflowDeployment, dag_id: str, run_id: str) -> None:
    """Wait until the run's (only) generate task instance waits in the triggerer."""
    api = deployment.api
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"

    def deferred() -> bool | None:
        states = [ti["state"] for ti in api.get(path).json()["task_instances"]]
        if "failed" in states or "success" in states:
            raise AirflowNotReadyError(f"{dag_id} run {run_id} ended early: {states}")
        return True if states == ["deferred"] else None

    deployment.wait_for(f"{dag_id} to defer", deferred, timeout=RUN_TIMEOUT, every=0.5)


def run_view_url(scenario: UiScenario, dag_id: str) -> str:
    """The Airflow UI page of a run's "Rivya generations" tab (the plugin's ``dag_run`` view)."""
    run_id = quote(RUN_IDS[dag_id], safe="")
    return f"{scenario.base_url}/dags/{dag_id}/runs/{run_id}/plugin/rivya-generations"


def open_in_ui(page: Page, url: str, *, heading: str) -> Frame:
    """Open an Airflow UI page that embeds a Rivya view; return the view's frame once drawn.

    :param page: a signed-in browser page.
    :param url: the Airflow UI page.
    :param heading: the view's ``h1``, waited for inside the frame.
    """
    page.goto(url)
    frame_element = page.wait_for_selector("iframe[src*='rivya/']")
    assert frame_element is not None
    frame = frame_element.content_frame()
    assert frame is not None
    frame.wait_for_selector(f"h1:has-text('{heading}')")
    # Wait for every image to be decoded, so screenshots and checks see them (a lazy one, such as
    # the board's enlarged image, loads only when it is shown).
    frame.wait_for_function(
        "() => [...document.images].filter(i => i.loading !== 'lazy')"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    return frame
