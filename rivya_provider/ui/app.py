"""The FastAPI app the api-server mounts at ``/rivya``: the run view, the overview, result files.

Every route needs a signed-in Airflow user (the api-server's own ``get_user`` dependency); run
routes also need read access to the DAG's XComs (``requires_access_dag``), so a user who may not
read the DAG gets a 403 and nothing of it. Files are addressed by numbers into the run's
manifests, never by a path from the request (see :func:`~rivya_provider.ui.data.read_result`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Annotated

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import (
    ConnectionDetails,
    DagAccessEntity,
)
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from rivya_provider.ui.data import (
    read_result,
    run_board,
    run_generations,
    spend_per_dag,
    spend_per_day,
)
from rivya_provider.ui.pages import Balance, overview_page, run_page

log = logging.getLogger(__name__)

#: The Connection whose balance the overview shows.
CONN_ID = "rivya_default"
#: No scripts, no frames of other origins, images from here or Rivya's CDN only.
CSP = (
    "default-src 'none'; img-src 'self' https: http:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}

ReadRun = Depends(requires_access_dag("GET", DagAccessEntity.XCOM))


def _balance(user: object) -> Balance:
    """Read the balance when ``user`` may read the Connection; say why not otherwise."""
    authorized = get_auth_manager().is_authorized_connection(
        method="GET", details=ConnectionDetails(conn_id=CONN_ID), user=user
    )
    if not authorized:
        return Balance(None, f"You may not read the {CONN_ID} connection.")
    from rivya_provider.hooks.rivya import RivyaHook

    try:
        hook = RivyaHook(rivya_conn_id=CONN_ID)
        try:
            return Balance(float(hook.get_conn().get_credits().current_credits))
        finally:
            hook.close()
    except Exception as exc:
        # The page stays useful without the balance; the reason is logged, not shown.
        log.warning("Rivya balance unavailable: %s", type(exc).__name__)
        return Balance(None, f"Balance unavailable ({type(exc).__name__}).")


def create_app() -> FastAPI:
    """Build the app; the api-server mounts it at ``/rivya``."""
    app = FastAPI(title="Rivya", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/runs/{dag_id}/{run_id}", dependencies=[ReadRun], response_class=HTMLResponse)
    def run_view(dag_id: str, run_id: str) -> HTMLResponse:
        board = run_board(dag_id=dag_id, run_id=run_id)
        page = run_page(dag_id=dag_id, run_id=run_id, board=board)
        return HTMLResponse(page, headers=HEADERS)

    @app.get("/runs/{dag_id}/{run_id}/files/{index}/{file_index}", dependencies=[ReadRun])
    def result_file(dag_id: str, run_id: str, index: int, file_index: int) -> Response:
        generations = run_generations(dag_id=dag_id, run_id=run_id)
        if not 0 <= index < len(generations):
            raise HTTPException(404, "No such generation in this run")
        manifest = generations[index].manifest
        data = read_result(manifest, file_index=file_index)
        if data is None:
            raise HTTPException(404, "No such file, or it changed since the run")
        media_type = manifest.files[file_index].content_type
        return Response(data, media_type=media_type, headers=HEADERS)

    @app.get("/overview", response_class=HTMLResponse)
    def overview(user: GetUserDep, runs: Annotated[int, Query(ge=1, le=500)] = 25) -> HTMLResponse:
        dag_ids = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
        spends = spend_per_dag(dag_ids=set(dag_ids), runs_per_dag=runs)
        daily = spend_per_day(dag_ids=set(dag_ids), now=datetime.now(timezone.utc))
        page = overview_page(balance=_balance(user), spends=spends, runs_per_dag=runs, daily=daily)
        return HTMLResponse(page, headers=HEADERS)

    return app
