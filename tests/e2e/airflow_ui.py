"""Drive the Connections page of a real Airflow UI as a user would (tests and docs screenshots).

The selectors are what the page shows a user (roles, labels, button names), so they hold across
Airflow's restyling; :func:`simple_auth_env` sets up a login with a known password.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, Response

#: The simple auth manager's user the UI tests and screenshots sign in as.
USERNAME = "admin"
#: A toast that reports an outcome (others, such as "loading", do not).
_RESULT_TOAST = (
    "[data-scope='toast'][data-part='root']:is([data-type='success'],[data-type='error'])"
)


@dataclass(frozen=True)
class Toast:
    """A notification the UI showed: ``success`` or ``error``, and its text."""

    kind: str
    text: str


@dataclass(frozen=True)
class TestOutcome:
    """What pressing "Test Connection" did: the API's answer and the toast the user saw."""

    __test__ = False  # not a pytest test class

    status_code: int
    body: dict[str, Any]
    toast: Toast


def simple_auth_env(folder: Path) -> tuple[dict[str, str], str]:
    """Return Airflow settings for a login as :data:`USERNAME` and that user's password.

    :param folder: where to write the simple auth manager's password file.
    """
    password = secrets.token_urlsafe(16)
    passwords = folder / "simple-auth-passwords.json"
    passwords.write_text(json.dumps({USERNAME: password}))
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    return env, password


def open_connections(page: Page, *, base_url: str) -> None:
    """Show Admin > Connections.

    :param page: a signed-in page.
    :param base_url: the API server's root URL.
    """
    page.goto(f"{base_url.rstrip('/')}/connections")
    page.get_by_role("button", name="Add Connection").wait_for()


def fill_rivya_form(
    page: Page, *, conn_id: str, base_url: str, api_key: str, port: str = ""
) -> Locator:
    """Open "Add Connection", choose Rivya and fill it in; return the dialog, not yet saved.

    :param page: a page showing the Connections list.
    :param conn_id: the new connection's id.
    :param base_url: the Rivya (or emulator) URL for the Base URL field.
    :param api_key: the API key field.
    :param port: the Port field (empty: left untouched, as every documented set-up does).
    """
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox", name="Connection Type").fill("Rivya")
    page.keyboard.press("Enter")
    dialog.get_by_label("Base URL").fill(base_url)
    dialog.get_by_label("API key").fill(api_key)
    if port:
        dialog.get_by_label("Port").fill(port)
    return dialog


def add_rivya_connection(
    page: Page, *, conn_id: str, base_url: str, api_key: str, port: str = ""
) -> None:
    """Add a Rivya connection through the form and wait until the API stored it.

    :param page: a page showing the Connections list.
    :param conn_id: the new connection's id.
    :param base_url: the Base URL field.
    :param api_key: the API key field.
    :param port: the Port field (empty: left untouched).
    """
    fill_rivya_form(page, conn_id=conn_id, base_url=base_url, api_key=api_key, port=port)
    with page.expect_response(lambda r: _is_call(r, "POST", "/api/v2/connections")) as saved:
        page.get_by_role("dialog").get_by_role("button", name="Save").click()
    _expect_ok(saved.value)
    page.reload()  # as a user coming back would see it, and without the "created" toast


def edit_connection(page: Page, *, conn_id: str, fields: Mapping[str, str]) -> None:
    """Change fields of a listed connection through its Edit dialog and wait until stored.

    :param page: a page showing the Connections list.
    :param conn_id: the connection to edit.
    :param fields: new values by field label, e.g. ``{"Port": "0"}``.
    """
    _row(page, conn_id).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    for label, value in fields.items():
        dialog.get_by_label(label, exact=True).fill(value)
    path = f"/api/v2/connections/{conn_id}"
    with page.expect_response(lambda r: _is_call(r, "PATCH", path)) as saved:
        dialog.get_by_role("button", name="Save").click()
    _expect_ok(saved.value)
    page.reload()  # as a user coming back would see it, and without the "updated" toast


def press_test_button(page: Page, *, conn_id: str) -> TestOutcome:
    """Press "Test Connection" on a listed connection; return the API's answer and the toast.

    :param page: a page showing the Connections list (no outcome toast on it yet).
    :param conn_id: the connection to test.
    """
    button = _row(page, conn_id).get_by_role("button", name="Test Connection")
    with page.expect_response(lambda r: _is_call(r, "POST", "/api/v2/connections/test")) as sent:
        button.click()
    response = sent.value
    toast = page.locator(_RESULT_TOAST).last
    toast.wait_for()
    body: dict[str, Any] = response.json()
    return TestOutcome(
        status_code=response.status,
        body=body,
        toast=Toast(kind=toast.get_attribute("data-type") or "", text=toast.inner_text()),
    )


def _row(page: Page, conn_id: str) -> Locator:
    cell = page.get_by_role("cell", name=conn_id, exact=True)
    return page.get_by_role("row").filter(has=cell)


def _is_call(response: Response, method: str, path: str) -> bool:
    url = response.url.split("?", 1)[0]
    return response.request.method == method and url.endswith(path)


def _expect_ok(response: Response) -> None:
    if not response.ok:
        raise AssertionError(f"{response.request.method} {response.url}: {response.status}")
