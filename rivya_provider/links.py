"""The operator extra link: opens the generation's result (or its status until there is one)."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from rivya_provider.client import GenerationTask
from rivya_provider.client.safety import is_http_url, path_id


class RivyaResultLink(BaseOperatorLink):
    """ "Rivya result": the primary result URL, or the task's API URL while it is not done."""

    name = "Rivya result"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value if isinstance(value, str) else ""

    @classmethod
    def url_for(cls, task: GenerationTask, *, base_url: str) -> str:
        """Return the URL the link should open for ``task`` in its current state."""
        if is_http_url(task.primary_url):  # never store a javascript: or data: link
            return str(task.primary_url)
        return f"{base_url}/api/v1/generations/{path_id(task.id, field_name='task_id')}"

    @classmethod
    def persist(cls, context: Any, url: str) -> None:
        """Store the link now (before deferring), so it shows while the task waits.

        Tasks store an empty link first: Airflow reads the link when any try ends, and a try that
        fails before submitting would otherwise log a misleading "XCom not found" error.
        """
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
