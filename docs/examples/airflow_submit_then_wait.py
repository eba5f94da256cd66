"""Upload a reference image, submit an edit, wait for it with the sensor, use the result.

Shows the four pieces working together: ``RivyaUploadFileOperator`` uploads the image once and
hands on reference media items; ``RivyaGenerateOperator(wait_for_completion=False)`` submits the
generation and returns at once; ``RivyaGenerationSensor`` waits for it in the triggerer
(``RivyaGenerationTrigger``) without holding a worker slot; a plain task reads the manifest.

Trigger it with ``{"reference": "<path or s3://... URI of a PNG, JPEG or WebP image>"}``; it needs
the Airflow Connection ``rivya_default``. Run by tests/integration/test_doc_examples_airflow.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from rivya_provider.operators.files import RivyaUploadFileOperator
from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.sensors.generation import RivyaGenerationSensor

with DAG(
    dag_id="rivya_submit_then_wait",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["rivya", "example"],
    params={"reference": Param(type="string", description="the product photo to edit")},
) as dag:
    upload = RivyaUploadFileOperator(
        task_id="upload",
        files="{{ params.reference }}",
        model="flux-kontext-pro",
    )
    submit = RivyaGenerateOperator(
        task_id="submit",
        model="flux-kontext-pro",
        prompt="Put the product on a marble table, soft morning light",
        model_params={"aspectRatio": "1:1", "outputFormat": "png"},
        reference_items=upload.output,
        wait_for_completion=False,
    )
    wait = RivyaGenerationSensor(
        task_id="wait",
        generation_id="{{ ti.xcom_pull('submit')['generation_id'] }}",
        deferrable=True,
        poke_interval=5,
        timeout=timedelta(minutes=30),
    )

    @task
    def publish(manifest: dict[str, Any]) -> list[str]:
        """Hand the result URLs on (download them promptly: they may expire)."""
        print(f"{manifest['generation_id']}: {manifest['charged_credits']} credits")
        return list(manifest["result_urls"])

    submit >> wait
    publish(wait.output)
