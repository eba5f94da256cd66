"""Quickstart: one text-to-image generation with flux-2-flex, copied to a local folder.

Shows the smallest useful DAG: ``RivyaGenerateOperator`` submits one generation (one paid
generation per task instance, even across retries), waits for it in the triggerer (deferrable),
copies the image to ``<output_dir>/<run date>/<run id>/`` and returns a small manifest through
XCom.

Needs the Airflow Connection ``rivya_default`` (API key in the password; host ``https://rivya.ai``
or a local emulator's address). The output folder defaults to ``$RIVYA_OUTPUT_DIR`` or
``/tmp/rivya-output`` and can be changed per run with the ``output_dir`` param.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.sdk import DAG, Param

from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.outputs import folder_name

with DAG(
    dag_id="rivya_quickstart",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["rivya", "example"],
    user_defined_filters={"folder_name": folder_name},
    params={
        "output_dir": Param(
            os.environ.get("RIVYA_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "rivya-output")),
            type="string",
        )
    },
) as dag:
    RivyaGenerateOperator(
        task_id="generate",
        model="flux-2-flex",
        prompt="A lighthouse on a cliff at dawn, watercolour",
        model_params={"aspectRatio": "16:9"},
        # Not {{ ds }}: a run triggered without a logical date (Airflow 3 allows it) has none.
        # The run id keeps two runs of one day apart.
        output_path=(
            "{{ params.output_dir }}/{{ dag_run.run_after | ds }}/{{ run_id | folder_name }}"
        ),
        deferrable=True,
        retries=2,
    )
