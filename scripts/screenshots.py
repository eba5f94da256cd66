"""Take the documentation's screenshots of the Airflow UI in headless Chromium (`make screenshots`).

A real Airflow API server (fresh metadata DB, simple-auth login) and the emulator run while a
browser fills the Rivya connection form and presses its Test button; the PNGs go to docs/images/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
#: The emulator's key, as in the docs' local set-up.
LOCAL_KEY = "rvya_sk_local_dev"
#: Lets a toast finish sliding in before the picture is taken.
SETTLE_MS = 800


def main(argv: list[str] | None = None) -> int:
    """Write ``connection-form.png`` and ``connection-test.png``.

    :param argv: command-line arguments (``--out FOLDER``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder for the PNG files")
    out: Path = parser.parse_args(argv).out
    if chromium_path() is None:
        sys.stderr.write("Chromium is not installed: apt-get install chromium\n")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rivya-screenshots-") as tmp:
        _take(Path(tmp), out)
    return 0


def _take(base: Path, out: Path) -> None:
    (base / "dags").mkdir()
    env, password = simple_auth_env(base)
    with (
        run_emulator(api_key=LOCAL_KEY) as emulator,
        run_airflow(
            base / "deployment", dags_folder=base / "dags", extra_env=env, components=["api-server"]
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
        form.screenshot(path=out / "connection-form.png")
        page.reload()  # leave the dialog unsaved
        add_rivya_connection(
            page, conn_id="rivya_default", base_url=emulator.base_url, api_key=LOCAL_KEY, port="0"
        )
        press_test_button(page, conn_id="rivya_default")
        page.wait_for_timeout(SETTLE_MS)
        page.screenshot(path=out / "connection-test.png")
    for name in ("connection-form.png", "connection-test.png"):
        print(out / name)


if __name__ == "__main__":
    raise SystemExit(main())
