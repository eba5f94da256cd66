"""DAGs of the contract suite (``tests/contract``): one generation, copied, with one retry.

``conf["out"]`` is the folder results are copied to; ``conf["report"]`` a JSON-lines file where
each failed or retried try records its exception, so tests can read what Airflow saw.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateOperator


def record(context: Any) -> None:
    """Append this try's exception (type, message, code) to ``conf["report"]``."""
    conf = context["dag_run"].conf or {}
    error = context.get("exception")
    entry = {
        "try_number": context["ti"].try_number,
        "error_type": type(error).__name__ if error else None,
        "error": str(error) if error else None,
        "code": getattr(error, "code", None),
    }
    with open(conf["report"], "a") as report:
        report.write(json.dumps(entry) + "\n")


for deferrable in (True, False):
    with DAG(
        f"rivya_contract_{'deferred' if deferrable else 'polling'}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
    ):
        RivyaGenerateOperator(
            task_id="generate",
            model="flux-2-flex",
            prompt="{{ dag_run.conf.get('prompt', 'a lighthouse at dawn') }}",
            model_params={"aspectRatio": "4:3"},
            output_path="{{ dag_run.conf['out'] }}",
            deferrable=deferrable,
            retries=1,
            retry_delay=timedelta(0),
            poll_interval=0.1,
            first_poll_delay=0.05,
            # Bounds how long a create waits out 409s from servers that refuse every repeat.
            generation_timeout=5,
            on_failure_callback=record,
            on_retry_callback=record,
        )
