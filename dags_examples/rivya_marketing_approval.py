"""Marketing refresh with human approval: a person approves each image before it is published.

The campaign of ``rivya_marketing_refresh`` (its ``campaign.json``), with a person in the loop.
Needs Airflow 3.1+ (human-in-the-loop operators); on Airflow 3.0 this file defines no DAG.

- ``generate`` is one mapped ``RivyaGenerateOperator`` instance per asset, as in the refresh.
- ``review`` asks a person, for each image, in the Airflow UI (Browse, Required Actions): approve
  or reject. The form shows the image (a link opens it full size), prompt, model and credits, and
  what each answer does. The image is Rivya's result URL, which may expire: answer within a day
  or so.
- ``regenerate`` generates each rejected asset once more: a new generation, charged again on
  purpose. It runs under its own task id, so its Idempotency-Keys differ from the rejected one's
  and Rivya cannot replay the rejected image. ``review_retake`` asks about the new image; its
  form says it is the second attempt, and that Reject now drops the asset.
- ``publish`` copies every approved image to ``<output_root>/<run date>/<run id>/published/``,
  writes ``summary.json`` next to it (published assets, rejected generations, credits of all of
  them) and publishes the Airflow Asset ``rivya_marketing_approved``. An asset rejected twice is
  left out and named in the summary. It returns the published generation ids under
  ``rivya_published``, which the run's "Rivya generations" tab marks "published".

Needs the Airflow Connection ``rivya_default``. Params: ``campaign`` (path or URI of the campaign
file) and ``output_root`` (default ``$RIVYA_ASSETS_ROOT`` or ``<tmp>/rivya-assets``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import TriggerRule
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task

from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.outputs import folder_name
from rivya_provider.ui.board import PUBLISHED_KEY

try:
    from airflow.providers.standard.operators.hitl import HITLOperator
except Exception:  # Airflow 3.0: the module refuses to load (human-in-the-loop came with 3.1)
    HITLOperator = None

# --8<-- [start:dag]
APPROVED_ASSETS = Asset("rivya_marketing_approved")
CAMPAIGN_FILE = Path(__file__).with_name("campaign.json")
DEFAULT_ROOT = os.environ.get(
    "RIVYA_ASSETS_ROOT", os.path.join(tempfile.gettempdir(), "rivya-assets")
)
APPROVE, REJECT = "Approve", "Reject"


def as_list(items: Sequence[Any]) -> list[Any]:
    """Read a mapped task's results (indexing stops at the count; iterating probes one more)."""
    return [items[index] for index in range(len(items))]


def review_form(manifest: dict[str, Any], *, retake: bool = False) -> dict[str, str]:
    """Return the subject and markdown body a reviewer sees for one generated image.

    No server paths: the reviewer needs the image, what made it and what each answer does.

    :param manifest: the generate task's manifest of the image.
    :param retake: the image is the asset's second (its first was rejected).
    """
    name, url = manifest["client_request_id"], manifest.get("primary_url")
    # Airflow's form shows an image at most 300 px wide: the image and a link open it full size.
    image = (
        f"[![{name}]({url})]({url})\n\n[Open the full-size image]({url})"
        if url
        else "*Rivya returned no image URL for this generation.*"
    )
    if retake:
        heading = "**Second attempt: the first image was rejected.**\n\n"
        answers = (
            "**Approve** publishes this image. **Reject** drops the asset: nothing of it is "
            "published in this run, it is not generated again, and the run's summary.json lists "
            "it under `failed`. Both images' credits are spent either way."
        )
    else:
        heading = ""
        answers = (
            "**Approve** publishes this image. **Reject** generates a new one once (charged "
            "again) and asks you about it; a second Reject drops the asset from this run."
        )
    body = (
        f"{heading}{image}\n\n"
        f"**Prompt:** {manifest['prompt']}\n\n"
        f"**Model:** `{manifest['model']}` · **Params:** `{json.dumps(manifest['params'])}` · "
        f"**Credits:** {manifest['charged_credits']} · "
        f"**Generation:** `{manifest['generation_id']}`\n\n"
        f"{answers}"
    )
    question = "second attempt, publish this image?" if retake else "publish this image?"
    return {"subject": f"{name}: {question}", "body": body}


def run_day(dag_run: Any) -> str:
    """Return the day a run reviews: its logical date, else (a run without one) when it ran."""
    return (dag_run.logical_date or dag_run.run_after).date().isoformat()


def run_folder(output_root: str, dag_run: Any) -> ObjectStoragePath:
    """Return the run's own folder, ``<output_root>/<run date>/<run id>``."""
    return ObjectStoragePath(output_root) / run_day(dag_run) / folder_name(dag_run.run_id)


def approved(decision: dict[str, Any]) -> bool:
    """Tell whether a review's answer approves the image."""
    return APPROVE in decision["chosen_options"]


if HITLOperator is not None:
    with DAG(
        dag_id="rivya_marketing_approval",
        schedule="@daily",
        start_date=datetime(2026, 11, 1),
        catchup=False,
        max_active_runs=1,
        tags=["rivya", "example"],
        params={
            "campaign": Param(str(CAMPAIGN_FILE), type="string"),
            "output_root": Param(DEFAULT_ROOT, type="string"),
        },
    ) as dag:

        @task
        def load_campaign(*, params: dict[str, Any], dag_run: Any) -> list[dict[str, Any]]:
            """Read the campaign; return one set of operator arguments per asset."""
            campaign = json.loads(ObjectStoragePath(params["campaign"]).read_text())
            folder = run_folder(params["output_root"], dag_run)
            return [
                {
                    "model": asset["model"],
                    "prompt": asset["prompt"],
                    "model_params": asset.get("params", {}),
                    "client_request_id": asset["name"],
                    "output_path": str(folder / asset["name"]),
                }
                for asset in campaign["assets"]
            ]

        @task
        def review_forms(
            manifests: Sequence[dict[str, Any]], retake: bool = False
        ) -> list[dict[str, str]]:
            """Return one review form per generated image (``retake``: second images)."""
            return [review_form(manifest, retake=retake) for manifest in as_list(manifests)]

        @task
        def rejected(
            wanted: list[dict[str, Any]],
            manifests: Sequence[dict[str, Any]],
            decisions: Sequence[dict[str, Any]],
        ) -> list[dict[str, Any]]:
            """Return the operator arguments of each rejected asset, saved to a retake folder."""
            names = {
                m["client_request_id"]
                for m, d in zip(as_list(manifests), as_list(decisions), strict=True)
                if not approved(d)
            }
            return [
                {**w, "output_path": f"{w['output_path']}/retake"}
                for w in wanted
                if w["client_request_id"] in names
            ]

        @task(trigger_rule=TriggerRule.NONE_FAILED, outlets=[APPROVED_ASSETS])
        def publish(
            reviewed: list[Sequence[dict[str, Any]]],
            *,
            params: dict[str, Any],
            dag_run: Any,
            outlet_events: Any,
        ) -> dict[str, Any]:
            """Copy approved images to ``published/``; write summary.json; publish the Asset."""
            first, first_decisions, retakes, retake_decisions = map(as_list, reviewed)
            rounds = [
                *zip(first, first_decisions, strict=True),
                *zip(retakes, retake_decisions, strict=True),
            ]
            final = {m["client_request_id"]: m for m, d in rounds if approved(d)}
            day = run_day(dag_run)
            folder = run_folder(params["output_root"], dag_run)
            (folder / "published").mkdir(parents=True, exist_ok=True)
            published = []
            for name, manifest in final.items():
                source = ObjectStoragePath(manifest["files"][0]["path"])
                target = folder / "published" / f"{name}{Path(source.name).suffix}"
                target.write_bytes(source.read_bytes())
                published.append(str(target))
            summary = {
                "run_date": day,
                "folder": str(folder),
                "assets": list(final.values()),
                "published": published,
                "rejected": [m["generation_id"] for m, d in rounds if not approved(d)],
                "failed": [
                    m["client_request_id"] for m in first if m["client_request_id"] not in final
                ],
                "credits": sum(m["charged_credits"] for m, _ in rounds),
            }
            (folder / "summary.json").write_text(json.dumps(summary, indent=2))
            print(
                f"published {len(published)} of {len(first)} assets; given up: {summary['failed']}"
            )
            outlet_events[APPROVED_ASSETS].extra = {"folder": str(folder / "published")}
            # --8<-- [start:published]
            # PUBLISHED_KEY: the Rivya tab of the run marks these generations "published".
            published_ids = [m["generation_id"] for m in final.values()]
            return {
                **{key: summary[key] for key in ("published", "rejected", "failed", "credits")},
                PUBLISHED_KEY: published_ids,
            }
            # --8<-- [end:published]

        wanted = load_campaign()
        generate = RivyaGenerateOperator.partial(
            task_id="generate",
            deferrable=True,
            retries=2,
            max_active_tis_per_dag=4,
            map_index_template="{{ task.client_request_id }}",
        ).expand_kwargs(wanted)
        # --8<-- [start:review]
        review = HITLOperator.partial(
            task_id="review",
            options=[APPROVE, REJECT],
            map_index_template="{{ task.subject.split(':')[0] }}",
        ).expand_kwargs(review_forms(generate.output))
        # A new task id: new Idempotency-Keys, so a new (paid) generation, never the rejected one.
        regenerate = RivyaGenerateOperator.partial(
            task_id="regenerate",
            deferrable=True,
            retries=2,
            map_index_template="{{ task.client_request_id }}",
        ).expand_kwargs(rejected(wanted, generate.output, review.output))
        review_retake = HITLOperator.partial(
            task_id="review_retake",
            options=[APPROVE, REJECT],
            map_index_template="{{ task.subject.split(':')[0] }}",
        ).expand_kwargs(
            review_forms.override(task_id="retake_forms")(regenerate.output, retake=True)
        )
        # --8<-- [end:review]
        publish([generate.output, review.output, regenerate.output, review_retake.output])
# --8<-- [end:dag]
