"""What differs between the Airflow 3.x lines the tests run on (3.0 to 3.3), in one place.

Import Airflow names here rather than by one release's path. Every import is lazy, so importing
this module does not import Airflow (tests/conftest.py must set AIRFLOW_HOME first).
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import version
from typing import Any

import pytest
from packaging.version import Version


@functools.cache
def airflow_version() -> Version:
    """Return the installed Airflow release, without its pre/post/dev parts."""
    return Version(Version(version("apache-airflow")).base_version)


def airflow_at_least(release: str) -> bool:
    """Tell whether the installed Airflow is ``release`` or newer (e.g. ``"3.2"``)."""
    return airflow_version() >= Version(release)


def airflow_line() -> str:
    """Return the installed release line, e.g. ``"3.1"``."""
    return f"{airflow_version().major}.{airflow_version().minor}"


def _first_found(*dotted: str) -> Any:
    """Return the first of these ``module.name`` paths that imports (newest release first)."""
    for path in dotted:
        module, _, name = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {dotted} in Airflow {airflow_version()}")


def dag_bag_class() -> Any:
    """Return ``DagBag`` (moved to ``airflow.dag_processing.dagbag`` in 3.3)."""
    return _first_found("airflow.dag_processing.dagbag.DagBag", "airflow.models.dagbag.DagBag")


def import_string(dotted: str) -> Any:
    """Import a dotted path as Airflow does (``airflow._shared`` since 3.3, ``utils`` before)."""
    airflow_import_string = _first_found(
        "airflow._shared.module_loading.import_string",
        "airflow.utils.module_loading.import_string",
    )
    return airflow_import_string(dotted)


def dag_serialization() -> Any:
    """Return the DAG serialiser (``DagSerialization`` since 3.3, ``SerializedDAG`` before)."""
    return _first_found(
        "airflow.serialization.serialized_objects.DagSerialization",
        "airflow.serialization.serialized_objects.SerializedDAG",
    )


def task_runtime_hooks() -> Any:
    """Return the hooks a worker resolves connection types with (a mapping by connection type).

    Airflow 3.3 gives tasks their own providers manager; earlier lines share the core one.
    """
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:
        from airflow.providers_manager import ProvidersManager

        return ProvidersManager().hooks  # type: ignore[no-untyped-call]
    return ProvidersManagerTaskRuntime().hooks  # type: ignore[no-untyped-call]


def form_from_provider_info() -> bool:
    """Tell whether Airflow builds the connection form from the provider info (3.2+).

    Older lines call the hook's ``get_ui_field_behaviour`` and show the JSON extra field.
    """
    return airflow_at_least("3.2")


def has_task_state_store() -> bool:
    """Tell whether tasks get ``context["task_state_store"]`` (3.3+)."""
    return airflow_at_least("3.3")


def requires_airflow(release: str, feature: str) -> pytest.MarkDecorator:
    """Skip a test of a feature that older Airflow releases do not have.

    :param release: the first release line with the feature, e.g. ``"3.3"``.
    :param feature: what the test needs, for the skip reason.
    """
    return pytest.mark.skipif(
        not airflow_at_least(release),
        reason=f"{feature} needs Airflow {release}+ (installed: {airflow_version()})",
    )


def broken_in_airflow(line: str, problem: str) -> pytest.MarkDecorator:
    """Skip a test on one Airflow release line where Airflow itself is broken.

    Each use is listed in CHANGELOG.md and docs/compatibility.md; keep the list short.

    :param line: the release line, e.g. ``"3.2"``.
    :param problem: the upstream problem, as it shows.
    """
    return pytest.mark.skipif(
        airflow_line() == line,
        reason=f"Airflow {airflow_version()} itself: {problem}",
    )


def skip_where_callbacks_get_no_exception() -> None:
    """Skip the rest of a test that needs ``context["exception"]`` in failure callbacks.

    ``dag.test()`` before Airflow 3.3 runs failure and retry callbacks without it; on 3.3+ a
    missing exception is a real failure, so this returns and the test's assertions report it.
    """
    if not airflow_at_least("3.3"):
        pytest.skip(
            f"Airflow {airflow_version()} itself: dag.test() passes no context['exception'] "
            "to failure and retry callbacks"
        )


def ui_test_rejects_empty_port() -> bool:
    """Tell whether the UI's Test button fails with "Bad Request" on a connection without a port.

    The UI sends ``port: 0`` for an empty Port, and the API server's check that the tested
    endpoint is the stored one takes 0 for a different port (fixed in apache/airflow#73298).
    Releases without that check at all never reject it.
    """
    try:
        same_endpoint = _first_found(
            "airflow.api_fastapi.core_api.routes.public.connections._same_endpoint"
        )
    except ImportError:
        return False
    return not same_endpoint(0, None)


#: Why runs of a human-in-the-loop DAG skip on Airflow 3.1 and 3.2 (``hitl_under_dag_test``).
HITL_DAG_TEST_PROBLEM = (
    "`dag.test()` and `airflow dags test` run the human-in-the-loop trigger in-process, where the "
    "supervisor answers its GetHITLDetailResponse request with 'Unhandled request', so every "
    "request fails with AttributeError"
)


def hitl_under_dag_test() -> pytest.MarkDecorator:
    """Skip a ``dag.test()`` run of a human-in-the-loop DAG where it cannot work.

    The operators came with Airflow 3.1; 3.1 and 3.2 cannot answer their trigger in-process.
    """
    if not airflow_at_least("3.1"):
        reason = "the approval DAG (human-in-the-loop operators) needs Airflow 3.1+ "
        reason += f"(installed: {airflow_version()})"
    else:
        reason = f"Airflow {airflow_version()} itself: {HITL_DAG_TEST_PROBLEM}"
    return pytest.mark.skipif(not airflow_at_least("3.3"), reason=reason)


@functools.cache
def reuse_in_process_execution_api() -> None:
    """Make ``dag.test()`` build its in-process Execution API once per process, as 3.3 does.

    Before Airflow 3.3, every task run and in-line trigger under ``dag.test()`` builds a new
    FastAPI app with Cadwyn's versioned routes: 2-3 s each on 2 cores, most of a test's time.
    Airflow 3.3 caches it (apache/airflow#65235); this applies the same cache to older lines.
    The app holds no per-run state: each call of ``_api_client`` sets its DAG bag override anew.
    """
    if airflow_at_least("3.3"):
        return
    from airflow.sdk.execution_time import supervisor

    supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(
        supervisor.in_process_api_server
    )
