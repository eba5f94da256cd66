"""A succeeded task listing more result URLs than are kept is still a succeeded task.

The task is paid by the time its results are listed: refusing the answer would fail the task
after the charge. The first 16 URLs are kept, the count Rivya reported is kept beside them, and
a warning says how many were left out.
"""

from __future__ import annotations

import re

import pytest

from rivya_provider.client import GenerationTask

pytestmark = pytest.mark.no_airflow

URLS = [f"https://cdn.rivya.test/task_1-{n}.png" for n in range(20)]


def test_twenty_result_urls_keep_sixteen_and_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
    task = GenerationTask.model_validate(
        {
            "id": "task_1",
            "status": "succeeded",
            "final_credits": 14,
            "result": {"urls": URLS},
        }
    )
    assert task.result_urls == URLS[:16]
    assert task.result_count == 20
    assert task.primary_url == URLS[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(re.search(r"\b4\b", message) for message in warnings), warnings
