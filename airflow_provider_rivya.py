"""Import name Airflow derives from the distribution name ``airflow-provider-rivya``.

Airflow 3.3 looks for example DAGs of every installed provider by importing a module named after
its distribution (dashes to underscores) and logs an error with a traceback on every
``airflow dags test`` when that import fails. This module makes the import succeed; it is not a
package, so it adds no example DAGs. The provider itself lives in ``rivya_provider``.
"""

from __future__ import annotations

__all__: list[str] = []
