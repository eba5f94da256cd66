"""One generate task, waiting in the worker or in the triggerer, for the scripted-server tests
(tests/airflow/test_server_answers.py). The server decides every answer; ``rivya_default``
points at it."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from rivya_provider.operators.generate import RivyaGenerateOperator

for mode in ("polling", "deferred"):
    with DAG(f"rivya_server_answers_{mode}", schedule=None, start_date=datetime(2026, 1, 1)):
        RivyaGenerateOperator(
            task_id="generate",
            model="flux-2-flex",
            prompt="p",
            generation_timeout=60,
            deferrable=mode == "deferred",
            retries=0,
            # Fixed, short polls: the scripted generation takes a few seconds.
            poll_interval=0.5,
            first_poll_delay=0.5,
        )
