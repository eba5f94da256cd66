"""Screenshots of the Airflow UI for the docs, taken in headless Debian Chromium.

Run with ``make screenshots``. Each shot starts what it shows and stops it afterwards.

- ``rivya_run_view``: the Rivya plugin's run tab and credits page (``docs/images/rivya-*.png``),
  in a real Airflow deployment with the emulator (``tests/e2e/ui_scenario.py``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.browser_support import browser_page, chromium_path, login
from tests.e2e.ui_scenario import GALLERY, open_in_ui, run_ui_scenario, run_view_url

IMAGES = Path(__file__).resolve().parent / "images"


def rivya_run_view() -> list[Path]:
    """Shoot the "Rivya generations" tab of a run and the "Rivya credits" page."""
    run_view, credits = IMAGES / "rivya-run-view.png", IMAGES / "rivya-credits.png"
    with (
        tempfile.TemporaryDirectory(prefix="rivya-shots-") as root,
        run_ui_scenario(Path(root)) as scenario,
        browser_page(viewport=(1400, 900)) as page,
    ):
        password = scenario.passwords["admin"]
        login(page, base_url=scenario.base_url, username="admin", password=password)
        open_in_ui(page, run_view_url(scenario, GALLERY), heading="Rivya generations")
        page.screenshot(path=str(run_view))
        open_in_ui(page, f"{scenario.base_url}/plugin/rivya-credits", heading="Rivya credits")
        page.screenshot(path=str(credits))
    return [run_view, credits]


SHOTS = {"rivya_run_view": rivya_run_view}


def main() -> int:
    """Take the shots named on the command line (all by default)."""
    if chromium_path() is None:
        sys.stderr.write("Chromium is not installed: apt-get install -y chromium\n")
        return 1
    IMAGES.mkdir(exist_ok=True)
    for name in sys.argv[1:] or list(SHOTS):
        for path in SHOTS[name]():
            print(f"{name}: {path.relative_to(IMAGES.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
