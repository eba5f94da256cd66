"""A headless Chromium driven by Playwright, for tests and screenshots of the Airflow UI.

The browser is Debian's ``chromium`` package, never one Playwright downloads: tests that need it
skip when :func:`chromium_path` finds none. Each :func:`browser_page` starts a fresh browser with
its own throw-away profile, so no cookie, cache or login leaks from one use to the next.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

#: Where Debian's ``chromium`` package puts the browser.
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
#: Headless in a container as root, and nothing fetched from the network behind the test's back.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: How long one action or assertion may wait for the page, in milliseconds.
DEFAULT_TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    """Return the Chromium executable to drive, or ``None`` when it is not installed."""
    if DEBIAN_CHROMIUM.is_file():
        return str(DEBIAN_CHROMIUM)
    return shutil.which("chromium")


@contextmanager
def browser_page(*, viewport: tuple[int, int] = (1280, 800)) -> Iterator[Page]:
    """Yield a page of a fresh headless Chromium; the browser and its profile go at the end.

    :param viewport: the page's width and height in CSS pixels.
    :raises RuntimeError: when Chromium is not installed (callers skip on :func:`chromium_path`).
    """
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium")
    width, height = viewport
    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": height},
        )
        try:
            context.set_default_timeout(DEFAULT_TIMEOUT_MS)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def login(page: Page, *, base_url: str, username: str, password: str) -> None:
    """Sign in on the login page of Airflow's simple auth manager and wait for the home page.

    :param page: the browser page.
    :param base_url: the API server's root URL, e.g. ``http://127.0.0.1:8080``.
    :param username: a user of ``[core] simple_auth_manager_users``.
    :param password: that user's password.
    """
    root = base_url.rstrip("/")
    page.goto(f"{root}/auth/login")
    page.locator("input[name='username']").fill(username)
    page.locator("input[name='password']").fill(password)
    page.locator("button[type='submit']").click()
    # The login page hands the token over by redirecting to the UI, which then leaves /auth.
    page.wait_for_url(lambda url: url.startswith(root) and "/auth/" not in url)
