"""Quickstart: one text-to-image generation with flux-2-flex, copied to a local folder.

Shows the smallest useful DAG: ``RivyaGenerateOperator`` submits one generation (one paid
generation per task instance, even across retries), waits for it (polling in the worker for a
few seconds, then deferred to the triggerer), copies the image to
``<output_dir>/<run date>/<run id>/`` and returns a small manifest through XCom.
A failed try is retried twice, 30 s apart rather than Airflow's default 5 minutes: a retry
finds the generation the task already paid for, so it costs nothing and need not wait long.

Needs the Airflow Connection ``rivya_default`` (API key in the password; host ``https://rivya.ai``
or a local emulator's address). The ``output_dir`` param (``/tmp/rivya-output`` unless a run's
conf says otherwise) is the folder under which each run gets its own.
"""

from datetime import datetime, timedelta

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateOperator

with DAG(
    dag_id="rivya_quickstart",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    tags=["rivya", "example"],
    params={"output_dir": "/tmp/rivya-output"},
):
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="A lighthouse on a cliff at dawn, watercolour",
        model_params={"aspectRatio": "16:9"},
        output_dir="{{ params.output_dir }}",
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
