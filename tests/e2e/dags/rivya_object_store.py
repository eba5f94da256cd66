"""The object-storage DAG of the production end-to-end tests (``tests/e2e/test_production.py``).

``rivya_object_store``: 20 mapped deferrable generations copy their images to an S3 bucket
(``s3://aws_default@<bucket>/<run id>``, the bucket from the run's conf) on the ``makers`` queue,
which only the first Celery worker serves; ``read_back``, on the ``readers`` queue of the second
worker, reads every file the manifests list from the bucket and says what it found.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from rivya_provider.operators.generate import RivyaGenerateOperator

SIZE = 20

with DAG(
    dag_id="rivya_object_store",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"bucket": Param("results", type="string")},
):
    generated = RivyaGenerateOperator.partial(
        task_id="generate",
        queue="makers",
        model="flux-2-flex",
        model_params={"aspectRatio": "1:1"},
        output_path="s3://aws_default@{{ params.bucket }}/{{ run_id }}",
        deferrable=True,
        poll_interval=3.0,
        generation_timeout=300.0,
        retries=2,
        retry_delay=timedelta(seconds=5),
    ).expand(prompt=[f"Object store poster number {n}, flat colours" for n in range(SIZE)])

    @task(queue="readers")
    def read_back(manifests: list[dict[str, Any]]) -> dict[str, Any]:
        """Read every listed file from the object store; check its size and SHA-256."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        files = [entry for manifest in manifests for entry in manifest["files"]]
        matching = 0
        for entry in files:
            data = ObjectStoragePath(entry["path"]).read_bytes()
            same = len(data) == entry["size_bytes"] and (
                hashlib.sha256(data).hexdigest() == entry["sha256"]
            )
            matching += same
        return {"listed": len(files), "matching": matching, "home": os.environ.get("HOME", "")}

    read_back(generated.output)  # type: ignore[arg-type]
