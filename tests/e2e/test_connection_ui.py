"""The Rivya connection form and its Test button in a real Airflow UI, in headless Chromium.

One Airflow API server (the UI and the Test button need nothing else), one emulator and one
signed-in browser serve the whole module; every test adds its own connection through the form.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from rivya_provider.emulator import RunningEmulator, run_emulator
from tests.airflow_compat import ui_test_rejects_empty_port
from tests.browser_support import browser_page, chromium_path, login
from tests.e2e.airflow_processes import AirflowDeployment, run_airflow
from tests.e2e.airflow_ui import (
    USERNAME,
    add_rivya_connection,
    edit_connection,
    open_connections,
    press_test_button,
    simple_auth_env,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(chromium_path() is None, reason="needs Chromium: apt-get install chromium"),
]

API_KEY = "rvya_sk_browser_" + "k3y" * 8
START_CREDITS = 1000


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_key=API_KEY, credits=START_CREDITS) as running:
        yield running


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowDeployment, str]]:
    """A deployment with a simple-auth login and the Test button enabled; no DAGs to parse."""
    base = tmp_path_factory.mktemp("ui")
    (base / "dags").mkdir()
    env, password = simple_auth_env(base)
    with run_airflow(
        base / "deployment", dags_folder=base / "dags", extra_env=env, components=["api-server"]
    ) as running:
        yield running, password


@pytest.fixture(scope="module")
def signed_in(deployment: tuple[AirflowDeployment, str]) -> Iterator[Page]:
    """One browser for the module, signed in (the UI's scripts load once, then come from cache)."""
    airflow, password = deployment
    with browser_page() as fresh:
        login(fresh, base_url=airflow.api_url, username=USERNAME, password=password)
        yield fresh


@pytest.fixture
def page(signed_in: Page, deployment: tuple[AirflowDeployment, str]) -> Page:
    """The signed-in page showing Admin > Connections, without toasts of earlier tests."""
    open_connections(signed_in, base_url=deployment[0].api_url)
    return signed_in


def test_port_left_empty_then_zero(page: Page, emulator: RunningEmulator) -> None:
    """As documented (Port empty); where Airflow rejects that, Port 0 is the way out."""
    add_rivya_connection(page, conn_id="rivya_form", base_url=emulator.base_url, api_key=API_KEY)
    outcome = press_test_button(page, conn_id="rivya_form")
    connected = f"Connected to {emulator.base_url}: {START_CREDITS} credits"
    if ui_test_rejects_empty_port():
        assert outcome.status_code == 400, outcome
        assert "differs from the stored connection" in outcome.body["detail"]
        assert outcome.toast.kind == "error"
        assert "Bad Request" in outcome.toast.text
        edit_connection(page, conn_id="rivya_form", fields={"Port": "0"})
        outcome = press_test_button(page, conn_id="rivya_form")
    assert outcome.status_code == 200, outcome
    assert outcome.body == {"status": True, "message": connected}
    assert outcome.toast.kind == "success"
    assert connected in outcome.toast.text


def test_port_of_the_base_url_passes_too(page: Page, emulator: RunningEmulator) -> None:
    port = emulator.base_url.rsplit(":", 1)[1]
    add_rivya_connection(
        page, conn_id="rivya_port", base_url=emulator.base_url, api_key=API_KEY, port=port
    )
    outcome = press_test_button(page, conn_id="rivya_port")
    assert outcome.toast.kind == "success", outcome
    assert f"Connected to {emulator.base_url}: {START_CREDITS} credits" in outcome.toast.text


def test_wrong_key_shows_the_code_and_request_id(page: Page, emulator: RunningEmulator) -> None:
    wrong_key = "rvya_sk_browser_" + "bad" * 8
    add_rivya_connection(
        page, conn_id="rivya_wrong", base_url=emulator.base_url, api_key=wrong_key, port="0"
    )
    outcome = press_test_button(page, conn_id="rivya_wrong")
    assert outcome.status_code == 200, outcome  # the test ran and reported a failure
    assert outcome.body["status"] is False
    assert outcome.toast.kind == "error"
    assert "api_key_invalid [HTTP 401]" in outcome.toast.text
    assert "requestId req_" in outcome.toast.text
    assert wrong_key not in outcome.toast.text
