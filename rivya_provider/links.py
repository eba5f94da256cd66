"""The operator extra link: opens the generation's result, and only once there is one."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from rivya_provider.client import GenerationTask, TaskStatus, is_http_url


class RivyaResultLink(BaseOperatorLink):
    """ "Rivya result": the primary result URL once the generation succeeded, else no link.

    The API's status URL is never the link: it needs the API key, so a browser gets
    ``401 api_key_missing``. Airflow's UI hides a link whose URL is empty and shows it as soon
    as the task stores one.
    """

    name = "Rivya result"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value if isinstance(value, str) else ""

    @classmethod
    def url_for(cls, task: GenerationTask, *, base_url: str | None = None) -> str:
        """Return the URL the link should open for ``task`` in its current state ("" for none).

        :param task: the generation as last seen.
        :param base_url: unused; kept so callers written for earlier releases still work.
        """
        if task.status is not TaskStatus.SUCCEEDED:
            return ""
        if is_http_url(task.primary_url):  # never store a javascript: or data: link
            return str(task.primary_url)
        return ""

    @classmethod
    def persist(cls, context: Any, url: str) -> None:
        """Store the link for this try ("" shows none).

        Tasks store an empty link first: Airflow reads the link when any try ends, and a try that
        fails before submitting would otherwise log a misleading "XCom not found" error.
        """
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
