"""Take the documentation's screenshots of the Airflow UI in headless Chromium (`make screenshots`).

Each shot starts what it shows (a real Airflow API server with simple-auth login, the emulator)
and stops it afterwards; the PNGs go to docs/images/. ``make screenshots SHOTS=connection`` takes
one; all by default:

- ``connection``: the Rivya connection form and its Test button's toast.
- ``rivya_run_view``: the Rivya plugin's run tab (the review board of a reviewed run, light at
  1400 px and dark at 1024 px) and credits page (its chart and table), in a full deployment
  (``tests/e2e/ui_scenario.py``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rivya_provider.emulator import run_emulator
from tests.browser_support import browser_page, chromium_path, login
from tests.e2e.airflow_processes import run_airflow
from tests.e2e.airflow_ui import (
    USERNAME,
    add_rivya_connection,
    fill_rivya_form,
    open_connections,
    press_test_button,
    simple_auth_env,
)
from tests.e2e.ui_scenario import REVIEW, open_in_ui, run_ui_scenario, run_view_url

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
#: The emulator's key, as in the docs' local set-up.
LOCAL_KEY = "rvya_sk_local_dev"
#: Lets a toast finish sliding in before the picture is taken.
SETTLE_MS = 800


def connection() -> list[Path]:
    """Shoot the connection form and the toast of a successful Test."""
    form_png, test_png = IMAGES / "connection-form.png", IMAGES / "connection-test.png"
    with tempfile.TemporaryDirectory(prefix="rivya-screenshots-") as tmp:
        base = Path(tmp)
        (base / "dags").mkdir()
        env, password = simple_auth_env(base)
        with (
            run_emulator(api_key=LOCAL_KEY) as emulator,
            run_airflow(
                base / "deployment",
                dags_folder=base / "dags",
                extra_env=env,
                components=["api-server"],
            ) as airflow,
            browser_page(viewport=(1280, 1000)) as page,
        ):
            login(page, base_url=airflow.api_url, username=USERNAME, password=password)
            open_connections(page, base_url=airflow.api_url)
            form = fill_rivya_form(
                page,
                conn_id="rivya_default",
                base_url="https://rivya.ai",
                api_key="rvya_sk_example",
                port="0",
            )
            form.screenshot(path=form_png)
            page.reload()  # leave the dialog unsaved
            add_rivya_connection(
                page,
                conn_id="rivya_default",
                base_url=emulator.base_url,
                api_key=LOCAL_KEY,
                port="0",
            )
            press_test_button(page, conn_id="rivya_default")
            page.wait_for_timeout(SETTLE_MS)
            page.screenshot(path=test_png)
    return [form_png, test_png]


def rivya_run_view() -> list[Path]:
    """Shoot the "Rivya generations" board of a reviewed run (light, and dark at 1024 px) and
    the "Rivya credits" page."""
    run_view, dark = IMAGES / "rivya-run-view.png", IMAGES / "rivya-board-dark.png"
    credits = IMAGES / "rivya-credits.png"
    with (
        tempfile.TemporaryDirectory(prefix="rivya-shots-") as root,
        run_ui_scenario(Path(root)) as scenario,
        browser_page(viewport=(1400, 1000)) as page,
    ):
        password = scenario.passwords["admin"]
        login(page, base_url=scenario.base_url, username="admin", password=password)
        open_in_ui(page, run_view_url(scenario, REVIEW), heading="Rivya generations")
        page.screenshot(path=str(run_view))
        page.set_viewport_size({"width": 1024, "height": 1000})
        page.emulate_media(color_scheme="dark")
        open_in_ui(page, run_view_url(scenario, REVIEW), heading="Rivya generations")
        page.screenshot(path=str(dark))
        # Tall enough for the chart of spend over time and the table per DAG under it.
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.emulate_media(color_scheme="light")
        open_in_ui(page, f"{scenario.base_url}/plugin/rivya-credits", heading="Rivya credits")
        page.screenshot(path=str(credits))
    return [run_view, dark, credits]


SHOTS: dict[str, Callable[[], list[Path]]] = {
    "connection": connection,
    "rivya_run_view": rivya_run_view,
}


def main(argv: list[str] | None = None) -> int:
    """Take the shots named on the command line (all by default).

    :param argv: shot names.
    """
    names = sys.argv[1:] if argv is None else argv
    unknown = sorted(set(names) - set(SHOTS))
    if unknown:
        sys.stderr.write(f"unknown shot(s) {unknown}; known: {sorted(SHOTS)}\n")
        return 2
    if chromium_path() is None:
        sys.stderr.write("Chromium is not installed: apt-get install -y chromium\n")
        return 1
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in names or list(SHOTS):
        for path in SHOTS[name]():
            print(f"{name}: {path.relative_to(IMAGES.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
