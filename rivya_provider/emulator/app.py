"""The emulator's FastAPI application: public API, CDN downloads and admin routes."""

from __future__ import annotations

from fastapi import FastAPI

from rivya_provider import __version__
from rivya_provider.emulator.admin import ADMIN_PREFIX, admin_router
from rivya_provider.emulator.backend import Backend, backend_of
from rivya_provider.emulator.cdn import cdn_router
from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.errors import install_error_handlers
from rivya_provider.emulator.openapi import install_openapi
from rivya_provider.emulator.pipeline import (
    OPENAPI_PATH,
    RequestMiddleware,
    install_drop_log_filter,
)
from rivya_provider.emulator.routes import public_router


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """Build an emulator with its own in-memory state.

    :param config: start settings; the defaults make a new key and 1000 credits.
    """
    backend = Backend.from_config(config or EmulatorConfig())
    app = FastAPI(
        title="Rivya Public API v1 (local emulator)",
        version=__version__,
        description="The Rivya Public API as served by the airflow-provider-rivya emulator.",
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(public_router(backend))
    app.include_router(cdn_router(backend), include_in_schema=False)
    app.include_router(admin_router(backend), prefix=ADMIN_PREFIX, include_in_schema=False)
    app.add_middleware(RequestMiddleware, backend=backend)
    install_drop_log_filter()
    return app


__all__ = ["backend_of", "create_app"]
