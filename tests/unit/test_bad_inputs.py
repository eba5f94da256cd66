"""Bad input never reaches the network: each row fails with a typed error naming its field,
and the server (a raw-socket one on 127.0.0.1, counting requests) sees nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.client import (
    AsyncRivyaClient,
    GenerationRequest,
    Limits,
    RetryPolicy,
    RivyaClient,
    RivyaError,
    Timeouts,
)
from tests.hostile import HostileServer

KEY = "rvya_sk_bad_inputs_0123456789"
_HERE = Path(__file__)


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer().running() as running:
        yield running


@pytest.fixture
def env(server: HostileServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    conn = {"conn_type": "rivya", "host": server.base_url, "password": KEY}
    os.environ["AIRFLOW_CONN_RIVYA_DEFAULT"] = json.dumps(conn)
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("x")
    server.seen.clear()
    yield {"url": server.base_url, "file": str(a_file), "server": server}
    os.environ.pop("AIRFLOW_CONN_RIVYA_DEFAULT", None)


def _client(env: dict[str, Any]) -> RivyaClient:
    return RivyaClient(api_key=KEY, base_url=env["url"], retry=RetryPolicy(max_attempts=1))


def _call(method: str, *args: Any, **kwargs: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        with _client(env) as api:
            return getattr(api, method)(*(a(env) if callable(a) else a for a in args), **kwargs)

    return run


def _acall(method: str, *args: Any) -> Callable[[dict[str, Any]], Any]:
    import asyncio

    async def go(env: dict[str, Any]) -> Any:
        async with AsyncRivyaClient(api_key=KEY, base_url=env["url"]) as api:
            return await getattr(api, method)(*args)

    return lambda env: asyncio.run(go(env))


def _generate(**kwargs: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        from rivya_provider.operators.generate import RivyaGenerateOperator

        values = {k: (v(env) if callable(v) else v) for k, v in kwargs.items()}
        values.setdefault("model", "flux-2-flex")
        values.setdefault("prompt", "a cat")
        return RivyaGenerateOperator(task_id="t", **values)

    return run


def _executed(**kwargs: Any) -> Callable[[dict[str, Any]], Any]:
    """Build the operator with valid plain arguments, set rendered values, run execute()."""

    def run(env: dict[str, Any]) -> Any:
        from rivya_provider.operators.generate import RivyaGenerateOperator

        op = RivyaGenerateOperator(task_id="t", model="flux-2-flex", prompt="a cat")
        for name, value in kwargs.items():
            setattr(op, name, value(env) if callable(value) else value)
        return op.execute(_context())

    return run


def _sensor(**kwargs: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        from rivya_provider.sensors.generation import RivyaGenerationSensor

        kwargs.setdefault("generation_id", "task_1")
        return RivyaGenerationSensor(task_id="s", **kwargs)

    return run


def _poke(generation_id: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        from rivya_provider.sensors.generation import RivyaGenerationSensor

        sensor = RivyaGenerationSensor(task_id="s", generation_id="task_1")
        sensor.generation_id = generation_id
        return sensor.poke(_context())

    return run


def _upload(files: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        from rivya_provider.operators.files import RivyaUploadFileOperator

        return RivyaUploadFileOperator(task_id="u", files=files)

    return run


def _settings(**conn: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        from airflow.sdk import Connection

        from rivya_provider.hooks.rivya import settings_from_connection

        values = {"host": env["url"], "password": KEY, **conn}
        return settings_from_connection(Connection(conn_id="c", conn_type="rivya", **values))

    return run


class _Ti:
    dag_id, task_id, map_index, try_number = "d", "t", -1, 1

    def xcom_push(self, **kwargs: Any) -> None:
        pass


def _context() -> dict[str, Any]:
    return {"ti": _Ti(), "run_id": "r", "task_state_store": None}


def _new_client(**kwargs: Any) -> Callable[[dict[str, Any]], Any]:
    def run(env: dict[str, Any]) -> Any:
        values = {"api_key": KEY, "base_url": env["url"], **kwargs}
        return RivyaClient(**values)

    return run


def _file(env: dict[str, Any]) -> str:
    return str(env["file"])


def _child_of_file(env: dict[str, Any]) -> str:
    return f"{env['file']}/results"


LONG = "x" * 4000
ROWS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    # operator arguments, checked when the DAG is parsed
    ("generation_timeout -5", _generate(generation_timeout=-5), "generation_timeout"),
    ("generation_timeout 0", _generate(generation_timeout=0), "generation_timeout"),
    ("generation_timeout str", _generate(generation_timeout="30"), "generation_timeout"),
    ("generation_timeout nan", _generate(generation_timeout=float("nan")), "generation_timeout"),
    ("generation_timeout bool", _generate(generation_timeout=True), "generation_timeout"),
    (
        "generation_timeout -td",
        _generate(generation_timeout=timedelta(seconds=-1)),
        "generation_timeout",
    ),
    ("poll_interval -1", _generate(poll_interval=-1), "poll_interval"),
    ("poll_interval fast", _generate(poll_interval="fast"), "poll_interval"),
    ("poll_interval 0", _generate(poll_interval=0), "poll_interval"),
    ("poll_interval inf", _generate(poll_interval=float("inf")), "poll_interval"),
    ("poll_interval list", _generate(poll_interval=[5]), "poll_interval"),
    ("first_poll_delay -1", _generate(first_poll_delay=-1), "first_poll_delay"),
    ("first_poll_delay str", _generate(first_poll_delay="2"), "first_poll_delay"),
    ("max_download_bytes -1", _generate(max_download_bytes=-1), "max_download_bytes"),
    ("max_download_bytes 0", _generate(max_download_bytes=0), "max_download_bytes"),
    ("max_download_bytes 1.5", _generate(max_download_bytes=1.5), "max_download_bytes"),
    ("max_download_bytes str", _generate(max_download_bytes="10"), "max_download_bytes"),
    ("reference_files 42", _generate(reference_files=42), "reference_files"),
    ("reference_files [42]", _generate(reference_files=[42]), "reference_files"),
    ("reference_files [None]", _generate(reference_files=[None]), "reference_files"),
    ("reference_files dict", _generate(reference_files={"a": 1}), "reference_files"),
    ("output_path ftp", _generate(output_path="ftp://example.com/out"), "output_path"),
    ("output_path http", _generate(output_path="http://example.com/out"), "output_path"),
    ("output_path javascript", _generate(output_path="javascript://x"), "output_path"),
    ("output_path a file", _generate(output_path=_file), "output_path"),
    ("output_path under a file", _generate(output_path=_child_of_file), "output_path"),
    ("output_path 42", _generate(output_path=42), "output_path"),
    ("output_dir ftp", _generate(output_dir="ftp://example.com/out"), "output_dir"),
    ("output_dir a file", _generate(output_dir=_file), "output_dir"),
    ("output_dir 42", _generate(output_dir=42), "output_dir"),
    ("output_dir and output_path", _generate(output_dir="/a", output_path="/b"), "output_dir"),
    # rendered inputs, checked at the start of execute()
    ("rendered output_path ftp", _executed(output_path="ftp://example.com/out"), "output_path"),
    ("rendered output_path file", _executed(output_path=_file), "output_path"),
    ("rendered output_dir ftp", _executed(output_dir="ftp://example.com/out"), "output_dir"),
    ("rendered reference_files 42", _executed(reference_files=42), "reference_files"),
    (
        "reference item file://",
        _executed(reference_items=[{"url": "file:///etc/passwd", "kind": "image"}]),
        "reference_items[0].url",
    ),
    (
        "reference item javascript:",
        _executed(reference_items=[{"url": "javascript:alert(1)", "kind": "image"}]),
        "reference_items[0].url",
    ),
    (
        "reference item without url",
        _executed(reference_items='[{"kind": "image"}]'),
        "reference_items[0].url",
    ),
    ("reference_items not JSON", _executed(reference_items="[not json"), "reference_items"),
    ("model_params a list", _executed(model_params=[1, 2]), "model_params"),
    # sensor
    ("sensor generation_id ..", _sensor(generation_id=".."), "generation_id"),
    ("sensor generation_id long", _sensor(generation_id=LONG), "generation_id"),
    ("sensor generation_id space", _sensor(generation_id="task 1"), "generation_id"),
    ("sensor generation_id empty", _sensor(generation_id=""), "generation_id"),
    ("rendered generation_id ../credits", _poke("../credits"), "generation_id"),
    ("rendered generation_id long", _poke(LONG), "generation_id"),
    ("rendered generation_id newline", _poke("task_1\n"), "generation_id"),
    # upload operator
    ("upload files 42", _upload(42), "files"),
    ("upload files [1.5]", _upload([1.5]), "files"),
    # client calls
    ("get_generation ..", _call("get_generation", ".."), "task_id"),
    ("get_generation empty", _call("get_generation", ""), "task_id"),
    ("get_generation long", _call("get_generation", LONG), "task_id"),
    ("get_generation newline", _call("get_generation", "a\nb"), "task_id"),
    ("get_generation None", _call("get_generation", None), "task_id"),
    ("get_generation 42", _call("get_generation", 42), "task_id"),
    ("aget_generation ..", _acall("aget_generation", ".."), "task_id"),
    ("get_file ..", _call("get_file", ".."), "file_id"),
    ("aget_file long", _acall("aget_file", LONG), "file_id"),
    ("download ftp", _call("download", "ftp://example.com/x", "/tmp/x"), "ftp://"),
    ("download javascript", _call("download", "javascript:alert(1)", "/tmp/x"), "javascript"),
    ("download file", _call("download", "file:///etc/passwd", "/tmp/x"), "file://"),
    (
        "download metadata IP",
        _call("download", "http://169.254.169.254/latest/meta-data", "/tmp/x"),
        "169.254.169.254",
    ),
    ("download private", _call("download", "http://10.1.2.3/x", "/tmp/x"), "10.1.2.3"),
    ("download ::1", _call("download", "http://[::1]:1/x", "/tmp/x"), "::1"),
    (
        "download metadata name",
        _call("download", "http://metadata.google.internal/x", "/tmp/x"),
        "metadata.google.internal",
    ),
    (
        "download localhost",
        _call("download", "http://localhost:9/x", "/tmp/x"),
        "localhost",
    ),
    (
        "create with a spaced key",
        _call(
            "create_generation",
            GenerationRequest(model="flux-2-flex", prompt="a"),
            idempotency_key="a b",
            validate=False,
        ),
        "idempotency_key",
    ),
    # client construction
    ("client api_key empty", _new_client(api_key=""), "api_key"),
    ("client api_key newline", _new_client(api_key=f"{KEY}\n1"), "api_key"),
    ("client api_key non-ascii", _new_client(api_key=f"{KEY}é"), "api_key"),
    ("client base_url ftp", _new_client(base_url="ftp://rivya.ai"), "base_url"),
    ("client base_url javascript", _new_client(base_url="javascript:alert(1)"), "base_url"),
    ("timeouts read -1", lambda env: Timeouts(read=-1), "timeouts.read"),
    ("limits deadline -1", lambda env: Limits(request_deadline=-1), "request_deadline"),
    ("limits response 0", lambda env: Limits(max_response_bytes=0), "max_response_bytes"),
    ("limits download str", lambda env: Limits(download_deadline="1"), "download_deadline"),  # type: ignore[arg-type]
    # Connection
    ("password newline", _settings(password=f"{KEY}\nX"), "password"),
    ("password non-ascii", _settings(password=f"{KEY}ü"), "password"),
    ("password inner space", _settings(password="rvya_sk_a b_cdefgh"), "password"),
    ("password empty", _settings(password=""), "password"),
    ("extra invalid JSON", _settings(extra="{not json"), "extra"),
    ("extra a list", _settings(extra="[1, 2]"), "extra"),
    ("extra nested too deep", _settings(extra="[" * 100_000), "extra"),
    ("extra timeout -1", _settings(extra='{"timeout": -1}'), "extra.timeout"),
    ("extra deadline 0", _settings(extra='{"request_deadline": 0}'), "extra.request_deadline"),
    (
        "extra response cap -5",
        _settings(extra='{"max_response_bytes": -5}'),
        "extra.max_response_bytes",
    ),
    ("extra allowed_hosts str", _settings(extra='{"allowed_hosts": 5}'), "extra.allowed_hosts"),
    ("extra unknown", _settings(extra='{"api_key": "x"}'), "extra.api_key"),
    ("host ftp", _settings(host="ftp://rivya.ai"), "host"),
    ("host javascript", _settings(host="javascript:alert(1)"), "host"),
]


@pytest.mark.parametrize(("label", "action", "field"), ROWS, ids=[row[0] for row in ROWS])
def test_bad_input_fails_typed_before_any_request(
    label: str, action: Callable[[dict[str, Any]], Any], field: str, env: dict[str, Any]
) -> None:
    with pytest.raises(RivyaError) as caught:
        action(env)
    assert field in str(caught.value)
    assert KEY not in str(caught.value)
    assert env["server"].seen == []


def test_the_table_is_large() -> None:
    assert len(ROWS) >= 60


def test_a_storage_failure_is_a_typed_error(tmp_path: Path) -> None:
    from rivya_provider.exceptions import RivyaStorageError, failing_fast

    with pytest.raises(RivyaStorageError, match="PermissionError") as caught, failing_fast():
        raise PermissionError(13, "denied", str(tmp_path))
    assert isinstance(caught.value.__cause__, PermissionError)
