"""Links from the Rivya pages to Airflow's own UI pages (a DAG).

The links are relative to the Rivya page that holds them: the api-server mounts the Rivya app at
``/rivya`` beside the UI's routes (``dags/<dag id>``, ...),
so climbing out of the Rivya page's folders reaches the UI's root wherever the api-server is
served, behind a proxy's path prefix too. Every part of a path is percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote

#: Folders between the UI's root and the credits page (``rivya/overview``).
OVERVIEW_DEPTH = 1


def airflow_ui_url(*segments: str, depth: int) -> str:
    """Return the UI page named by ``segments``, relative to a Rivya page ``depth`` folders deep.

    :param segments: the parts of the UI's path (``"dags", dag_id``), each percent-encoded here.
    :param depth: how many folders the linking page's URL has below the UI's root.
    """
    return "../" * depth + "/".join(quote(segment, safe="") for segment in segments)


def dag_url(dag_id: str, *, depth: int = OVERVIEW_DEPTH) -> str:
    """Return the Airflow UI page of a DAG, relative to the credits page by default.

    :param dag_id: the DAG.
    :param depth: how many folders the linking page's URL has below the UI's root.
    """
    return airflow_ui_url("dags", dag_id, depth=depth)
