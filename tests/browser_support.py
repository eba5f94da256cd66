"""Headless Chromium (Debian's package) driven by Playwright, for UI tests and screenshots.

Playwright never downloads a browser here: :func:`chromium_path` finds the system one, and
callers skip when it returns ``None``. Every :func:`browser_page` is a new browser with a
throw-away profile, so no login or cookie carries over between uses.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Page, sync_playwright

#: Root in a container needs --no-sandbox; the rest keeps Chromium off the network on its own.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Longest wait of one action, in milliseconds: bounds a hang, not a speed assertion.
TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    """Return the path of the system Chromium, or ``None`` when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def browser_page(*, viewport: tuple[int, int] = (1280, 800)) -> Iterator[Page]:
    """Yield a page of a fresh headless Chromium, closed with its profile at the end.

    :param viewport: width and height in CSS pixels.
    :raises RuntimeError: when Chromium is not installed.
    """
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed (apt-get install -y chromium)")
    width, height = viewport
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": width, "height": height},
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def login(page: Page, *, base_url: str, username: str, password: str) -> None:
    """Sign in through the simple auth manager's login form; return once the UI is shown.

    :param page: the browser page.
    :param base_url: the api-server's root URL, e.g. ``http://127.0.0.1:8080``.
    :param username: a user of ``[core] simple_auth_manager_users``.
    :param password: that user's password.
    """
    root = base_url.rstrip("/")
    page.goto(f"{root}/auth/login")
    page.locator("input[name='username']").fill(username)
    page.locator("input[name='password']").fill(password)
    page.locator("button[type='submit']").click()
    page.wait_for_url(lambda url: url.startswith(root) and "/auth/" not in url)
