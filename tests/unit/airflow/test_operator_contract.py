"""What DAG authors rely on: templated inputs, mapping, defaults, fail-fast errors, outputs."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from rivya_provider.client import (
    AuthenticationError,
    FieldProblem,
    GenerationFailedError,
    GenerationTask,
    GenerationTimeoutError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestValidationError,
    RivyaAPIError,
    RivyaClient,
    RivyaError,
    RivyaTransportError,
    ServerError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from rivya_provider.emulator import RunningEmulator
from rivya_provider.exceptions import (
    RivyaAuthError,
    RivyaInputError,
    RivyaPermanentError,
    failing_fast,
    permanent_failure,
)
from rivya_provider.links import RivyaResultLink
from rivya_provider.manifest import GenerationManifest
from rivya_provider.operators._references import as_source_list
from rivya_provider.operators.budget import RivyaCreditBudgetOperator
from rivya_provider.operators.files import RivyaUploadFileOperator
from rivya_provider.operators.generate import RivyaGenerateOperator
from rivya_provider.outputs import copy_results, folder_name, result_name, run_folder
from rivya_provider.sensors.generation import RivyaGenerationSensor
from tests.airflow_compat import dag_serialization

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
TASK_JSON: dict[str, Any] = {
    "id": "task_abc",
    "status": "succeeded",
    "model": "flux-2-flex",
    "reserved_credits": 14,
    "final_credits": 14,
    "created_at": "2026-05-11T00:00:00.000Z",
    "updated_at": "2026-05-11T00:00:07.250Z",
    "result": {
        "primary_url": "https://cdn.example/r/a.png",
        "urls": ["https://cdn.example/r/a.png", "https://cdn.example/r/b.png"],
    },
    "error": None,
}


def _dag() -> Any:
    from airflow.sdk import DAG

    return DAG("contract", schedule=None, start_date=datetime(2026, 1, 1))


# --- templated inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "fields"),
    [
        (
            RivyaGenerateOperator,
            {
                "model",
                "prompt",
                "model_params",
                "reference_files",
                "reference_items",
                "client_request_id",
                "output_path",
                "output_dir",
                "credit_budget",
                "period_budget",
                "budget_period",
            },
        ),
        (
            RivyaCreditBudgetOperator,
            {"generations", "credit_budget", "period_budget", "budget_period"},
        ),
        (RivyaUploadFileOperator, {"files", "kind", "model"}),
        (RivyaGenerationSensor, {"generation_id"}),
    ],
)
def test_every_user_input_is_templated(operator: type[Any], fields: set[str]) -> None:
    assert set(operator.template_fields) == fields
    parameters = inspect.signature(operator.__init__).parameters
    assert fields <= set(parameters)  # each templated field is a constructor argument


def test_templates_render_inside_nested_inputs() -> None:
    with _dag():
        operator = RivyaGenerateOperator(
            task_id="generate",
            model="{{ params.model }}",
            prompt="A poster of {{ params.subject }}",
            model_params={"aspectRatio": "{{ params.ratio }}"},
            reference_files=["{{ params.folder }}/ref.png"],
            reference_items=[{"url": "{{ params.url }}", "kind": "image"}],
            client_request_id="{{ run_id }}",
            output_path="{{ params.folder }}/out/{{ ds }}",
        )
    params = {
        "model": "flux-2-flex",
        "subject": "a fox",
        "ratio": "16:9",
        "folder": "/data",
        "url": "https://cdn.example/x.png",
    }
    operator.render_template_fields({"params": params, "run_id": "manual__1", "ds": "2026-05-11"})
    assert operator.model == "flux-2-flex"
    assert operator.prompt == "A poster of a fox"
    assert operator.model_params == {"aspectRatio": "16:9"}
    assert operator.reference_files == ["/data/ref.png"]
    assert operator.reference_items == [{"url": "https://cdn.example/x.png", "kind": "image"}]
    assert operator.client_request_id == "manual__1"
    assert operator.output_path == "/data/out/2026-05-11"


def test_inputs_are_not_checked_when_the_dag_is_parsed() -> None:
    # Values only known after rendering must not fail DAG parsing; execute() checks them.
    with _dag() as dag:
        RivyaGenerateOperator(
            task_id="generate",
            model="flux-2-flex",
            prompt="x" * 10_000,
            model_params={"aspectRatio": "7:7"},
            reference_files=["/does/not/exist.png"],
        )
        RivyaUploadFileOperator(task_id="upload", files="/does/not/exist.png", kind="image")
        RivyaGenerationSensor(task_id="wait", generation_id="{{ ti.xcom_pull('generate') }}")
    assert set(dag.task_dict) == {"generate", "upload", "wait"}


def test_generate_partial_expand_builds_a_mapped_operator() -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    with _dag() as dag:
        mapped = RivyaGenerateOperator.partial(task_id="posters", model="flux-2-flex").expand(
            prompt=["a fox", "an owl", "a bear"]
        )
    assert isinstance(mapped, MappedOperator)
    assert mapped.operator_class is RivyaGenerateOperator
    assert mapped.expand_input.value == {"prompt": ["a fox", "an owl", "a bear"]}
    assert mapped.partial_kwargs["model"] == "flux-2-flex"
    assert dag.task_dict["posters"] is mapped


def test_dag_serialisation_keeps_template_fields_and_the_extra_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serializer = dag_serialization()

    # A process-wide flag that Airflow turns off whenever it loads a serialised DAG the
    # scheduler's way (dag.test() in other tests does): the API server's way is with links.
    monkeypatch.setattr(serializer, "_load_operator_extra_links", True)

    with _dag() as dag:
        RivyaGenerateOperator(task_id="generate", model="flux-2-flex", prompt="a fox")
        RivyaGenerateOperator.partial(task_id="mapped", model="flux-2-flex").expand(
            prompt=["a", "b"]
        )
        RivyaUploadFileOperator(task_id="upload", files=["/data/a.png"])
        RivyaGenerationSensor(task_id="wait", generation_id="task_abc")
    data = serializer.to_dict(dag)
    serializer.validate_schema(data)
    restored = serializer.from_dict(data)
    link_key = RivyaResultLink().xcom_key
    for task_id in ("generate", "mapped", "wait"):
        task = restored.get_task(task_id)
        assert list(task.template_fields) == list(dag.get_task(task_id).template_fields)
        links = task.operator_extra_link_dict
        assert list(links) == [RivyaResultLink.name]
        assert links[RivyaResultLink.name].xcom_key == link_key
    assert list(restored.get_task("upload").template_fields) == ["files", "kind", "model"]


# --- deferrable default --------------------------------------------------------------------------


def _deferrable_default(operator: type[Any]) -> Any:
    return inspect.signature(operator.__init__).parameters["deferrable"].default


def test_deferrable_defaults_to_the_airflow_setting() -> None:
    from airflow.providers.common.compat.sdk import conf

    expected = conf.getboolean("operators", "default_deferrable", fallback=False)
    assert expected is False  # nothing in the test environment turns it on
    for operator in (RivyaGenerateOperator, RivyaGenerationSensor):
        assert _deferrable_default(operator) is expected
    assert RivyaGenerateOperator(task_id="g", model="m").deferrable is False
    assert RivyaGenerationSensor(task_id="s", generation_id="t").deferrable is False


def test_deferrable_follows_default_deferrable_when_it_is_on() -> None:
    # The default is read when the module is imported, so a fresh interpreter sees the setting.
    script = (
        "from rivya_provider.operators.generate import RivyaGenerateOperator as G\n"
        "from rivya_provider.sensors.generation import RivyaGenerationSensor as S\n"
        "print(G(task_id='g', model='m').deferrable, S(task_id='s', generation_id='t').deferrable)"
    )
    env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split()[-2:] == ["True", "True"]


# --- permanent failures --------------------------------------------------------------------------


def _api(error: type[Any], code: str, status: int, **extra: Any) -> Any:
    return error(status_code=status, code=code, message="nope", request_id=f"req_{code}", **extra)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (_api(AuthenticationError, "api_key_invalid", 401), "set that password to a valid key"),
        (_api(PermissionDeniedError, "api_scope_denied", 403), "give it the scope"),
    ],
)
def test_a_refused_key_names_the_connection_and_what_to_fix(error: RivyaError, says: str) -> None:
    failure = permanent_failure(error, "rivya_marketing")
    assert isinstance(failure, RivyaAuthError)
    assert "password of the Airflow connection 'rivya_marketing'" in str(failure)
    assert says in str(failure)
    assert str(error) in str(failure)  # the Rivya code and requestId stay
    assert permanent_failure(error) is not None
    assert str(permanent_failure(error)) == str(error)


@pytest.mark.parametrize(
    ("error", "twin"),
    [
        (RequestValidationError([FieldProblem("prompt", "too long")]), RivyaInputError),
        (InvalidInputError("the prompt is empty"), RivyaInputError),
        (_api(ValidationFailedError, "validation_failed", 400), RivyaInputError),
        (_api(AuthenticationError, "api_key_invalid", 401), RivyaAuthError),
        (_api(AuthenticationError, "api_key_revoked", 401), RivyaAuthError),
        (_api(PermissionDeniedError, "api_scope_denied", 403), RivyaAuthError),
        (_api(IdempotencyConflictError, "idempotency_conflict", 409), RivyaPermanentError),
        (_api(NotFoundError, "not_found", 404), RivyaPermanentError),
        # A 4xx code Rivya adds later is not retryable (rivya-api.md section 6).
        (_api(RivyaAPIError, "payload_too_large", 413), RivyaPermanentError),
    ],
)
def test_permanent_errors_fail_fast(error: RivyaError, twin: type[RivyaPermanentError]) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    failure = permanent_failure(error)
    assert type(failure) is twin
    assert isinstance(failure, AirflowFailException)  # what the task runner does not retry
    assert isinstance(failure, RivyaError)
    assert failure.code == getattr(error, "code", None)
    assert failure.request_id == getattr(error, "request_id", None)
    assert str(error) in str(failure)
    if twin is RivyaInputError:
        assert isinstance(failure, InvalidInputError)


def test_a_permanent_idempotency_conflict_says_how_to_start_over() -> None:
    failure = permanent_failure(_api(IdempotencyConflictError, "idempotency_conflict", 409))
    assert failure is not None
    assert "fresh_generation_on_retry=True" in str(failure)


@pytest.mark.parametrize(
    "error",
    [
        _api(IdempotencyConflictError, "idempotency_conflict", 409, retry_after=1.0),
        _api(RateLimitedError, "rate_limited", 429, retry_after=1.0),
        _api(InsufficientCreditsError, "insufficient_credits", 402),
        _api(ServerError, "internal_error", 500),
        _api(ServiceUnavailableError, "public_api_disabled", 503),
        _api(RivyaAPIError, "teapot_overheated", 530),
        GenerationFailedError(task_id="task_abc", code="generation_failed", message="no"),
        GenerationTimeoutError(task_id="task_abc", last_status="queued", waited_seconds=1.0),
        RivyaTransportError("connection refused"),
        RivyaInputError("already permanent", "validation_failed", "req_1"),
    ],
)
def test_errors_retrying_may_fix_keep_their_type(error: RivyaError) -> None:
    assert permanent_failure(error) is None
    with pytest.raises(type(error)) as caught, failing_fast():
        raise error
    assert caught.value is error


def test_failing_fast_keeps_code_request_id_and_cause() -> None:
    original = _api(ValidationFailedError, "validation_failed", 400)
    with pytest.raises(RivyaInputError) as caught, failing_fast():
        raise original
    assert caught.value.code == "validation_failed"
    assert caught.value.request_id == "req_validation_failed"
    assert caught.value.__cause__ is original


def test_failing_fast_lets_other_exceptions_through() -> None:
    with pytest.raises(KeyError), failing_fast():
        raise KeyError("not ours")


@pytest.mark.parametrize(
    "failure",
    [
        RivyaPermanentError("conflict", "idempotency_conflict", "req_1"),
        RivyaInputError("bad prompt", "validation_failed", "req_2"),
        RivyaAuthError("bad key", "api_key_invalid", None),
        RivyaInputError("local check"),
    ],
)
def test_permanent_errors_pickle(failure: RivyaPermanentError) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    copy = pickle.loads(pickle.dumps(failure))
    assert type(copy) is type(failure)
    assert (str(copy), copy.code, copy.request_id) == (
        str(failure),
        failure.code,
        failure.request_id,
    )
    assert isinstance(copy, AirflowFailException)


def test_mapped_failures_pickle() -> None:
    for error in (
        RequestValidationError([FieldProblem("prompt", "too long")]),
        _api(AuthenticationError, "api_key_invalid", 401),
        _api(IdempotencyConflictError, "idempotency_conflict", 409),
    ):
        failure = permanent_failure(error)
        assert failure is not None
        copy = pickle.loads(pickle.dumps(failure))
        assert (type(copy), str(copy), copy.code) == (type(failure), str(failure), failure.code)


# --- result names and copies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "index", "url", "content_type", "expected"),
    [
        ("task_abc", 0, "https://cdn.example/r/a.png", None, "task_abc-0.png"),
        ("task_abc", 1, "https://cdn.example/r/a.PNG?sig=x.y", None, "task_abc-1.png"),
        ("task_abc", 0, "https://cdn.example/r/a.png", "image/jpeg", "task_abc-0.jpg"),
        ("task_abc", 0, "https://cdn.example/r/a", "image/webp", "task_abc-0.webp"),
        ("task_abc", 0, "https://cdn.example/r/a", "image/png; charset=binary", "task_abc-0.png"),
        ("task_abc", 0, "https://cdn.example/r/a.webp", "application/x-unknown", "task_abc-0.webp"),
        ("task_abc", 0, "https://cdn.example/r/a", None, "task_abc-0.bin"),
        ("task_abc", 0, "https://cdn.example/r/a.verylongext", None, "task_abc-0.bin"),
        ("task_abc", 0, "https://cdn.example/r/a.p$g", None, "task_abc-0.bin"),
        ("../../etc/passwd", 0, "https://cdn.example/a.png", None, "etc_passwd-0.png"),
        ("a b/c:d", 2, "https://cdn.example/a.png", None, "a_b_c_d-2.png"),
        ("..", 0, "https://cdn.example/a.png", None, "generation-0.png"),
    ],
)
def test_result_name(
    task_id: str, index: int, url: str, content_type: str | None, expected: str
) -> None:
    name = result_name(task_id, index, url, content_type)
    assert name == expected
    assert SAFE_NAME.fullmatch(name)
    assert result_name(task_id, index, url, content_type) == name  # deterministic


@pytest.mark.parametrize(
    ("output_dir", "run_id", "expected"),
    [
        (
            "/data/out",
            "manual__2026-05-11T08:00:00+00:00",
            "/data/out/2026-05-11/manual__2026-05-11T08_00_00_00_00",
        ),
        ("/data/out/", "scheduled__x", "/data/out/2026-05-11/scheduled__x"),
        ("s3://bucket/renders", "../../etc", "s3://bucket/renders/2026-05-11/etc"),
    ],
)
def test_run_folder_is_the_run_date_then_the_run_id_under_output_dir(
    output_dir: str, run_id: str, expected: str
) -> None:
    run_after = datetime(2026, 5, 11, 8, 0, tzinfo=timezone.utc)

    assert run_folder(output_dir, run_after, run_id) == expected
    assert run_folder(output_dir, run_after, run_id).rsplit("/", 1)[1] == folder_name(run_id)


def test_output_path_and_output_dir_together_are_refused_naming_both() -> None:
    with pytest.raises(RequestValidationError) as caught:
        RivyaGenerateOperator(
            task_id="generate",
            model="flux-2-flex",
            prompt="a cat",
            output_path="/data/exact",
            output_dir="{{ params.output_dir }}",
        )

    assert caught.value.fields == ["output_path"]
    assert "output_path" in str(caught.value)
    assert "output_dir" in str(caught.value)


def test_output_dir_renders_as_a_template() -> None:
    with _dag():
        operator = RivyaGenerateOperator(
            task_id="generate",
            model="flux-2-flex",
            prompt="a cat",
            output_dir="{{ params.folder }}/renders",
        )
    operator.render_template_fields({"params": {"folder": "/data"}})

    assert operator.output_dir == "/data/renders"
    assert operator.output_path is None


def test_result_names_are_safe_for_hostile_input() -> None:
    for task_id in ("/abs/path", "..\\..\\win", "naïve_名前", "\x00\n", ".hidden"):
        name = result_name(task_id, 0, "https://cdn.example/a/../../b.png", "text/html")
        assert SAFE_NAME.fullmatch(name), name
        assert not name.startswith(".")
        assert "/" not in name


def test_copy_results_writes_safe_names_and_describes_the_copies(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    with RivyaClient(api_key=emulator.api_key, base_url=emulator.base_url) as client:
        task = client.create_generation(
            _flex_request(), idempotency_key="copy-test-0", validate=True
        )
        task = client.wait_for_generation(task.id, poll_interval=0.02, first_delay=0.0)
        copies = copy_results(client, task, str(tmp_path / "out"), max_bytes=10_000_000)
    assert [Path(c.path).name for c in copies] == [
        result_name(task.id, i, url, c.content_type)
        for i, (url, c) in enumerate(zip(task.result_urls, copies, strict=True))
    ]
    assert [c.url for c in copies] == task.result_urls
    for copy in copies:
        data = Path(copy.path).read_bytes()
        assert len(data) == copy.size_bytes > 0
        assert hashlib.sha256(data).hexdigest() == copy.sha256
    # Nothing half-written is left behind.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        Path(c.path).name for c in copies
    )


def _flex_request() -> Any:
    from rivya_provider.client import GenerationRequest

    return GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dawn")


# --- manifest and link ---------------------------------------------------------------------------


def test_manifest_describes_a_succeeded_task() -> None:
    task = GenerationTask.model_validate(TASK_JSON)
    request = {
        "model": "flux-2-flex",
        "prompt": "a fox",
        "params": {"aspectRatio": "16:9"},
        "client_request_id": "trace-1",
    }
    manifest = GenerationManifest.describe(
        task, request=request, origin="submitted", idempotency_key="airflow-rivya-x-0"
    )
    assert manifest.generation_id == "task_abc"
    assert manifest.status == "succeeded"
    assert manifest.model == "flux-2-flex"
    assert (manifest.reserved_credits, manifest.charged_credits) == (14, 14)
    assert manifest.seconds == 7.25
    assert manifest.primary_url == "https://cdn.example/r/a.png"
    assert manifest.result_urls == ["https://cdn.example/r/a.png", "https://cdn.example/r/b.png"]
    assert (manifest.prompt, manifest.params, manifest.client_request_id) == (
        "a fox",
        {"aspectRatio": "16:9"},
        "trace-1",
    )
    assert (manifest.origin, manifest.idempotency_key) == ("submitted", "airflow-rivya-x-0")
    xcom = manifest.model_dump(mode="json")
    assert json.loads(json.dumps(xcom)) == xcom  # plain JSON for XCom
    assert xcom["created_at"].startswith("2026-05-11T00:00:00")


def test_manifest_of_an_unfinished_task_has_no_results() -> None:
    queued = GenerationTask.model_validate(
        {**TASK_JSON, "status": "queued", "result": None, "final_credits": 0}
    )
    manifest = GenerationManifest.describe(
        queued, request={"model": "flux-2-flex"}, origin="replayed", idempotency_key=None
    )
    assert (manifest.primary_url, manifest.result_urls, manifest.charged_credits) == (None, [], 0)
    assert (manifest.prompt, manifest.params) == (None, {})


class _RecordingTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_result_link_opens_the_result_once_there_is_one() -> None:
    done = GenerationTask.model_validate(TASK_JSON)
    assert RivyaResultLink.url_for(done) == "https://cdn.example/r/a.png"
    # No link while it runs or after it failed: the API's status URL needs the API key.
    for status in ("queued", "processing", "failed"):
        task = GenerationTask.model_validate({**TASK_JSON, "status": status, "result": None})
        assert RivyaResultLink.url_for(task) == "", status
    ti = _RecordingTaskInstance()
    RivyaResultLink.persist({"ti": ti}, "https://cdn.example/r/a.png")
    assert ti.pushed == {RivyaResultLink().xcom_key: "https://cdn.example/r/a.png"}


@pytest.mark.parametrize(
    ("given", "sources"),
    [
        (None, []),
        ("", []),
        ("/data/a.png", ["/data/a.png"]),
        (Path("/data/a.png"), ["/data/a.png"]),
        (["s3://bucket/a.png", "/data/b.png"], ["s3://bucket/a.png", "/data/b.png"]),
        ('["s3://bucket/a.png", "/data/b.png"]', ["s3://bucket/a.png", "/data/b.png"]),
        ("[draft] a.png", ["[draft] a.png"]),
    ],
)
def test_reference_file_sources_accept_one_many_or_a_json_list(
    given: Any, sources: list[str]
) -> None:
    assert as_source_list(given) == sources


@pytest.mark.parametrize("rendered", ["{aspectRatio: 16:9}", "[" * 100_000])
def test_params_rendered_to_a_string_that_is_not_json_name_the_field(rendered: str) -> None:
    operator = RivyaGenerateOperator(
        task_id="g", model="flux-2-flex", prompt="x", model_params=rendered, validate=False
    )
    with pytest.raises(RequestValidationError) as raised:
        operator._checked_inputs()
    assert [problem.field for problem in raised.value.problems] == ["model_params"]
    assert "| tojson" in str(raised.value)
