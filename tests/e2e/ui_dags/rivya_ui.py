"""DAGs of the UI plugin's end-to-end test (``tests/e2e/test_ui_plugin.py``) and screenshots.

- ``rivya_ui_gallery``: three mapped generations (one prompt carries HTML, which the view must
  show as text), results copied to ``{{ params.output_dir }}/<run id>``.
- ``rivya_ui_private``: one generation, for a user the test's auth manager denies this DAG.
- ``rivya_ui_review``: two named assets (``map_index_template``) reviewed by a person
  (``HITLOperator``; the test answers through the REST API), one rejected and generated again,
  and a generation that fails (a model nobody offers); ``publish`` names the approved images
  (the board marks them published). Airflow 3.1+ only.
- ``rivya_ui_live``: one deferrable generation the test's emulator keeps processing, so the
  board shows it in progress.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param

from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.ui.board import PUBLISHED_KEY

GALLERY_PROMPTS = [
    "A lighthouse on a cliff at dawn, flat poster colours",
    "A red fox in fresh snow, watercolour",
    "Spring sale <b>banner</b> & 'quotes', bold letters",
]
PRIVATE_PROMPT = "A confidential product prototype on a grey table"
OUTPUT_PARAM = Param(
    os.environ.get("RIVYA_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "rivya-ui")),
    type="string",
)
COMMON: dict[str, Any] = {
    "model": "flux-2-flex",
    "output_path": "{{ params.output_dir }}/{{ run_id }}",
    "deferrable": False,
    "poll_interval": 0.5,
    "generation_timeout": 120.0,
    # A task an overloaded machine's executor loses before it starts runs again (its
    # Idempotency-Key makes a second try replay the same generation, never a new one).
    "retries": 1,
    "retry_delay": timedelta(seconds=1),
}

with DAG(
    dag_id="rivya_ui_gallery",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"output_dir": OUTPUT_PARAM},
):
    RivyaGenerateOperator.partial(
        task_id="generate", model_params={"aspectRatio": "1:1"}, **COMMON
    ).expand(prompt=GALLERY_PROMPTS)

with DAG(
    dag_id="rivya_ui_private",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"output_dir": OUTPUT_PARAM},
):
    RivyaGenerateOperator(
        task_id="generate", prompt=PRIVATE_PROMPT, model_params={"aspectRatio": "16:9"}, **COMMON
    )

LIVE_ASSET = "live-banner"
with DAG(
    dag_id="rivya_ui_live",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"output_dir": OUTPUT_PARAM},
):
    RivyaGenerateOperator.partial(
        task_id="generate",
        map_index_template="{{ task.client_request_id }}",
        **{**COMMON, "deferrable": True, "generation_timeout": 3600.0},
    ).expand_kwargs([{"client_request_id": LIVE_ASSET, "prompt": "A banner still being drawn"}])


def _hitl_operator() -> Any:
    """Airflow's ``HITLOperator``, or ``None`` on Airflow 3.0 (no human-in-the-loop there)."""
    try:
        from airflow.providers.standard.operators.hitl import HITLOperator
    except Exception:  # the module refuses to load before 3.1
        return None
    return HITLOperator


HITLOperator = _hitl_operator()
#: The review DAG's assets' generate arguments; a test reviewer rejects the first look of the
#: banner, so it is generated again and reviewed once more.
REVIEW_ASSETS: list[dict[str, Any]] = [
    {
        "client_request_id": "hero-banner",
        "model": "flux-kontext-pro",  # the model that draws 21:9
        "prompt": "A wide spring sale banner, pastel colours",
        "model_params": {"aspectRatio": "21:9"},
    },
    {
        "client_request_id": "feed-square",
        "model": "flux-2-flex",
        "prompt": "A cup of tea on a windowsill, square crop",
        "model_params": {"aspectRatio": "1:1"},
    },
]
#: What every generation of the review DAG shares (each asset names its model).
REVIEW_COMMON = {key: value for key, value in COMMON.items() if key != "model"}
REJECTED_ONCE = "hero-banner"


def _review_form(manifest: dict[str, Any]) -> dict[str, str]:
    """One HITL request per image; the subject starts with the asset's name."""
    name = manifest["client_request_id"]
    return {"subject": f"{name}: publish this image?", "body": manifest["prompt"]}


if HITLOperator is not None:
    from airflow.sdk import task

    with DAG(
        dag_id="rivya_ui_review",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"output_dir": OUTPUT_PARAM},
    ):

        @task
        def review_forms(manifests: Any) -> list[dict[str, str]]:
            return [_review_form(manifests[i]) for i in range(len(manifests))]

        @task
        def rejected(manifests: Any, decisions: Any) -> list[dict[str, Any]]:
            pairs = [(manifests[i], decisions[i]) for i in range(len(manifests))]
            names = {m["client_request_id"] for m, d in pairs if "Reject" in d["chosen_options"]}
            return [asset for asset in REVIEW_ASSETS if asset["client_request_id"] in names]

        by_name = "{{ task.client_request_id }}"
        generate = RivyaGenerateOperator.partial(
            task_id="generate", map_index_template=by_name, **REVIEW_COMMON
        ).expand_kwargs(REVIEW_ASSETS)
        subject_name = "{{ task.subject.split(':')[0] }}"
        review = HITLOperator.partial(
            task_id="review", options=["Approve", "Reject"], map_index_template=subject_name
        ).expand_kwargs(review_forms(generate.output))
        regenerate = RivyaGenerateOperator.partial(
            task_id="regenerate", map_index_template=by_name, **REVIEW_COMMON
        ).expand_kwargs(rejected(generate.output, review.output))
        review_retake = HITLOperator.partial(
            task_id="review_retake", options=["Approve", "Reject"], map_index_template=subject_name
        ).expand_kwargs(review_forms.override(task_id="retake_forms")(regenerate.output))

        @task
        def publish(reviewed: list[Any]) -> dict[str, Any]:
            """Name the approved images as published: the board marks them."""
            first, decisions, retakes, retake_decisions = (
                [round_[i] for i in range(len(round_))] for round_ in reviewed
            )
            rounds = [
                *zip(first, decisions, strict=True),
                *zip(retakes, retake_decisions, strict=True),
            ]
            approved = [m["generation_id"] for m, d in rounds if "Approve" in d["chosen_options"]]
            return {PUBLISHED_KEY: approved}

        publish([generate.output, review.output, regenerate.output, review_retake.output])
        # A generation that fails: a model nobody offers (templated, so the DAG still parses).
        RivyaGenerateOperator(
            task_id="broken",
            prompt="A generation that cannot start",
            **{**COMMON, "model": "{{ 'no-such-model' }}", "retries": 0},
        )
