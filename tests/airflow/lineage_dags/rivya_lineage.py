"""Test DAGs for the operators' OpenLineage and Asset events (tests/airflow/test_lineage.py).

``rivya_lineage``: an upload feeds a generation that also uploads a file of its own and copies
its result to ``output_dir``, and a deferrable generation. ``rivya_asset_outlets``: one
generation with two Asset outlets.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset

from rivya_provider.operators.files import RivyaUploadFileOperator
from rivya_provider.operators.generate import RivyaGenerateOperator

IMAGES = Asset("rivya_lineage_images")
CATALOGUE = Asset("rivya_lineage_catalogue")

with DAG(
    dag_id="rivya_lineage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"photo": "", "sketch": "", "output_dir": ""},
):
    upload = RivyaUploadFileOperator(task_id="upload", files="{{ params.photo }}")
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="The product on a marble table",
        reference_items=upload.output,
        reference_files="{{ params.sketch }}",
        output_path="{{ params.output_dir }}",
        deferrable=False,
        poll_interval=0.2,
        first_poll_delay=0.1,
    )
    # Waits in the triggerer: its events come from the resumed task (execute_complete).
    RivyaGenerateOperator(
        task_id="generate_deferred",
        model="flux-2-flex",
        prompt="The product on a beach",
        reference_items=upload.output,
        output_path="{{ params.output_dir }}/deferred",
        deferrable=True,
        poll_interval=0.2,
        first_poll_delay=0,  # one look in the worker, then (still running) defer
    )

with DAG(
    dag_id="rivya_asset_outlets",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"output_dir": ""},
):
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="A lighthouse at dawn",
        output_path="{{ params.output_dir }}",
        outlets=[IMAGES, CATALOGUE],
        deferrable=False,
        poll_interval=0.2,
        first_poll_delay=0.1,
    )
