"""An auth manager for the UI plugin's end-to-end test: Airflow's simple one, minus one DAG.

The simple auth manager lets every user read every DAG. This one denies ``rivya_ui_private`` to
the user ``outsider``, so the test exercises the plugin's real DAG-level permission check. The
api-server loads it through ``[core] auth_manager``.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DENIED_USER = "outsider"
DENIED_DAG = "rivya_ui_private"


class DenyOneDagAuthManager(SimpleAuthManager):
    """The simple auth manager, except that ``outsider`` may not see ``rivya_ui_private``."""

    def is_authorized_dag(self, *, user: Any, details: Any = None, **kwargs: Any) -> bool:
        if user.get_name() == DENIED_USER and details is not None and details.id == DENIED_DAG:
            return False
        allowed: bool = super().is_authorized_dag(user=user, details=details, **kwargs)
        return allowed
