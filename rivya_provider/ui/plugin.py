"""The Airflow plugin that puts the Rivya view into the UI (Airflow 3.1+).

Airflow loads it through the ``airflow.plugins`` entry point in every component, so this module
imports nothing heavy: the FastAPI app is built on its first request, inside the api-server.
Airflow 3.0 has no external views; there the plugin registers nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from packaging.version import Version

#: Where the api-server mounts the app.
URL_PREFIX = "/rivya"
#: The views' links, relative to the UI's ``<base href>``, so a proxy's path prefix is kept.
HREF_BASE = URL_PREFIX.lstrip("/")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def supported() -> bool:
    """Tell whether this Airflow has external views (3.1+)."""
    from airflow import __version__

    return Version(Version(__version__).base_version) >= Version("3.1")


class LazyApp:
    """An ASGI app that builds the Rivya FastAPI app when the first request arrives."""

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from rivya_provider.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


def external_views() -> list[dict[str, Any]]:
    """Return the UI entries: a tab on every DAG run and a page in the Browse menu."""
    return [
        {
            "name": "Rivya generations",
            "href": f"{HREF_BASE}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "rivya-generations",
        },
        {
            "name": "Rivya credits",
            "href": f"{HREF_BASE}/overview",
            "destination": "nav",
            "category": "browse",
            "url_route": "rivya-credits",
        },
    ]


class RivyaPlugin(AirflowPlugin):
    """The Rivya run view and credit overview, served by the api-server."""

    name = "rivya"
    fastapi_apps = (
        [{"name": "rivya", "app": LazyApp(), "url_prefix": URL_PREFIX}] if supported() else []
    )
    external_views = external_views() if supported() else []
