"""Scheduled marketing asset refresh: every asset of a campaign file, regenerated every day.

Shows generation at scale with dynamic task mapping:

- ``load_campaign`` reads ``campaign.json`` (shipped next to this file: asset names, prompts,
  models and params) at run time and checks every asset against the model catalogue, so a typo
  fails the run before any credit is spent.
- ``check_budget`` prices every asset with the live catalogue's credits per model and fails the
  run before any generation when it costs more than the ``credit_budget`` param or the wallet
  holds; ``generate`` gets the same budget and refuses to start a generation it can no longer
  pay for.
- ``generate`` is one mapped ``RivyaGenerateOperator`` instance per asset (named after the asset
  in the UI). Each waits in the triggerer, is billed once even when retried, and copies its
  image to ``<output_root>/<run date>/<run id>/<asset>/``, any ``ObjectStoragePath`` (local,
  ``s3://``...): the run id keeps two runs of one day apart. Each also records an event of the
  Asset ``rivya_marketing_images`` whose ``extra`` says which generation, model, files and
  credits. ``max_active_tis_per_dag`` bounds how many generations are in flight; see the docs on
  pools and rate limits before raising it.
- ``summarise`` runs even when some (or all) assets failed, writes ``summary.json`` (assets, credits
  spent, failures) next to the images and, when every asset succeeded, publishes the Airflow Asset
  ``rivya_marketing_assets`` with the folder in the event's ``extra``. It fails the run when any
  asset failed, after writing the summary.
- ``rivya_marketing_publish`` is a downstream DAG scheduled on that Asset: it runs after each
  complete refresh and lists the files of the latest one (a manual run does the same).

Needs the Airflow Connection ``rivya_default``. Params: ``campaign`` (path or URI of the campaign
file), ``output_root`` (default ``$RIVYA_ASSETS_ROOT`` or ``<tmp>/rivya-assets``) and
``credit_budget`` (credits one run may spend; the shipped campaign costs 58).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

# Both moved between Airflow 3.0 and 3.2; the compat provider finds them on every 3.x line.
from airflow.providers.common.compat.sdk import AirflowFailException, TriggerRule
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task
from pydantic import BaseModel, ConfigDict, Field

from rivya_provider.client import (
    FieldProblem,
    GenerationRequest,
    RequestValidationError,
    validate_generation,
)
from rivya_provider.exceptions import failing_fast
from rivya_provider.operators.budget import RivyaCreditBudgetOperator
from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.outputs import folder_name

# ALL_DONE_MIN_ONE_SUCCESS came with Airflow 3.1; on 3.0 the summary runs after any outcome.
SUMMARY_RULE = getattr(TriggerRule, "ALL_DONE_MIN_ONE_SUCCESS", TriggerRule.ALL_DONE)

# --8<-- [start:dag]
MARKETING_ASSETS = Asset("rivya_marketing_assets")
MARKETING_IMAGES = Asset("rivya_marketing_images")
CAMPAIGN_FILE = Path(__file__).with_name("campaign.json")
DEFAULT_ROOT = os.environ.get(
    "RIVYA_ASSETS_ROOT", os.path.join(tempfile.gettempdir(), "rivya-assets")
)


class CampaignAsset(BaseModel):
    """One asset of the campaign file; its name becomes a folder and the UI's map index."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    model: str
    prompt: str
    params: dict[str, Any] = {}


class Campaign(BaseModel):
    """The campaign file: a name and its assets (names unique)."""

    model_config = ConfigDict(extra="forbid")

    campaign: str
    assets: list[CampaignAsset] = Field(min_length=1)


def checked_campaign(text: str) -> Campaign:
    """Parse the campaign file and check every asset's prompt and params, reporting all problems."""
    campaign = Campaign.model_validate_json(text)
    problems = []
    seen: set[str] = set()
    for index, asset in enumerate(campaign.assets):
        where = f"assets[{index}] ({asset.name})"
        if asset.name in seen:
            problems.append(FieldProblem(f"{where}.name", "is used twice; names must be unique"))
        seen.add(asset.name)
        request = GenerationRequest(model=asset.model, prompt=asset.prompt, params=asset.params)
        try:
            validate_generation(request)
        except RequestValidationError as exc:
            problems += [FieldProblem(f"{where}.{p.field}", p.message) for p in exc.problems]
    if problems:
        raise RequestValidationError(problems, subject="campaign file")
    return campaign


def run_day(dag_run: Any) -> str:
    """Return the day a run refreshes: its logical date, else (a run without one) when it ran."""
    return (dag_run.logical_date or dag_run.run_after).date().isoformat()


def run_folder(output_root: str, dag_run: Any) -> ObjectStoragePath:
    """Return the run's own folder, ``<output_root>/<run date>/<run id>``."""
    return ObjectStoragePath(output_root) / run_day(dag_run) / folder_name(dag_run.run_id)


with DAG(
    dag_id="rivya_marketing_refresh",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    tags=["rivya", "example"],
    params={
        "campaign": Param(str(CAMPAIGN_FILE), type="string"),
        "output_root": Param(DEFAULT_ROOT, type="string"),
        "credit_budget": Param(100, type=["null", "number"], minimum=0),
    },
) as dag:

    @task
    def load_campaign(*, params: dict[str, Any], dag_run: Any) -> list[dict[str, Any]]:
        """Read and check the campaign; return one set of operator arguments per asset."""
        with failing_fast():  # an invalid campaign fails at once: retrying cannot fix it
            campaign = checked_campaign(ObjectStoragePath(params["campaign"]).read_text())
        folder = run_folder(params["output_root"], dag_run)
        return [
            {
                "model": asset.model,
                "prompt": asset.prompt,
                "model_params": asset.params,
                "client_request_id": asset.name,
                "output_path": str(folder / asset.name),
            }
            for asset in campaign.assets
        ]

    wanted = load_campaign()
    # --8<-- [start:budget]
    check_budget = RivyaCreditBudgetOperator(
        task_id="check_budget", generations=wanted, credit_budget="{{ params.credit_budget }}"
    )
    # --8<-- [end:budget]
    # --8<-- [start:fanout]
    generate = RivyaGenerateOperator.partial(
        task_id="generate",
        credit_budget="{{ params.credit_budget }}",
        deferrable=True,
        retries=2,
        max_active_tis_per_dag=4,
        map_index_template="{{ task.client_request_id }}",
        outlets=[MARKETING_IMAGES],
    ).expand_kwargs(wanted)
    # --8<-- [end:fanout]
    check_budget >> generate

    # Runs when some assets failed too, but not when the campaign could not be read.
    @task(trigger_rule=SUMMARY_RULE, outlets=[MARKETING_ASSETS])
    def summarise(
        wanted: list[dict[str, Any]],
        manifests: Sequence[dict[str, Any]],
        *,
        params: dict[str, Any],
        dag_run: Any,
        outlet_events: Any,
    ) -> dict[str, Any]:
        """Write summary.json; publish the Asset only when every asset was generated."""
        # Indexing stops at the count; iterating would probe one past the end and log a 404.
        done = {
            m["client_request_id"]: m for m in map(manifests.__getitem__, range(len(manifests)))
        }
        failed = [a["client_request_id"] for a in wanted if a["client_request_id"] not in done]
        day = run_day(dag_run)
        folder = run_folder(params["output_root"], dag_run)
        summary = {
            "run_date": day,
            "folder": str(folder),
            "assets": [
                done[a["client_request_id"]] for a in wanted if a["client_request_id"] in done
            ],
            "failed": failed,
            "credits": sum(m["charged_credits"] for m in done.values()),
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
        print(f"{len(done)} of {len(wanted)} assets, {summary['credits']} credits, in {folder}")
        if failed:
            raise AirflowFailException(
                f"{len(failed)} of {len(wanted)} assets failed: {', '.join(failed)}"
            )
        outlet_events[MARKETING_ASSETS].extra = {"folder": str(folder), "run_date": day}
        return {key: summary[key] for key in ("run_date", "folder", "failed", "credits")}

    summarise(wanted, generate.output)

with DAG(
    dag_id="rivya_marketing_publish",
    schedule=[MARKETING_ASSETS],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["rivya", "example"],
):

    @task(inlets=[MARKETING_ASSETS])
    def list_fresh_files(*, inlet_events: Any) -> list[str]:
        """List the files of the latest complete refresh (hand them to a CMS here)."""
        events = inlet_events[MARKETING_ASSETS]
        if not events:
            raise ValueError("rivya_marketing_assets has no event yet: run the refresh first")
        folder = ObjectStoragePath(events[-1].extra["folder"])
        files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
        print(f"{len(files)} fresh files in {folder}")
        return files

    list_fresh_files()
# --8<-- [end:dag]
