"""Provider metadata: valid for Airflow's schemas, importable, found by the ProvidersManager."""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
from importlib import metadata, resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev environment
import pytest

from rivya_provider import __version__
from rivya_provider.client import RequestValidationError, RetryPolicy, Timeouts
from rivya_provider.get_provider_info import get_provider_info
from rivya_provider.hooks.rivya import ConnectionExtras, RivyaHook, settings_from_connection
from tests.airflow_compat import form_from_provider_info, requires_airflow, task_runtime_hooks

DISTRIBUTION = "airflow-provider-rivya"
HOOK_PATH = "rivya_provider.hooks.rivya.RivyaHook"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("airflow").joinpath(name).read_text())
    return schema


def _validator(schema: dict[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _connection_types_validator() -> Any:
    """The stricter ``connection-types`` schema of provider.yaml, met by Airflow's providers."""
    full = _schema("provider.yaml.schema.json")
    shared = {key: full[key] for key in ("$schema", "definitions") if key in full}
    return _validator(shared | full["properties"]["connection-types"])


def _rivya_connection_type() -> dict[str, Any]:
    (conn_type,) = get_provider_info()["connection-types"]
    assert isinstance(conn_type, dict)
    return conn_type


def _import_object(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _providers_manager() -> Any:
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()  # type: ignore[no-untyped-call]


def _connection(extra: dict[str, Any] | None = None) -> Any:
    from airflow.sdk import Connection

    return Connection(
        conn_id="form",
        conn_type="rivya",
        password="rvya_sk_form",
        extra=json.dumps(extra) if extra is not None else None,
    )


def test_provider_info_validates_against_the_runtime_schema() -> None:
    _validator(_schema("provider_info.schema.json")).validate(get_provider_info())


def test_connection_types_validate_against_the_provider_yaml_schema() -> None:
    _connection_types_validator().validate(get_provider_info()["connection-types"])


@requires_airflow("3.2", "The connection form in provider.yaml's schema")
def test_the_provider_yaml_schema_rejects_a_broken_connection_form() -> None:
    # Proves the check above can fail: the sub-schema is really applied, with its enums.
    broken = copy.deepcopy(get_provider_info()["connection-types"])
    broken[0]["ui-field-behaviour"]["hidden-fields"].append("api_key")
    with pytest.raises(jsonschema.ValidationError, match="api_key"):
        _connection_types_validator().validate(broken)


def test_package_name_and_version_match_the_installed_distribution() -> None:
    info = get_provider_info()
    dist = metadata.distribution(DISTRIBUTION)
    assert info["package-name"] == dist.metadata["Name"] == DISTRIBUTION
    assert info["versions"][0] == dist.version == __version__
    assert not info["package-name"].startswith("apache-airflow-providers-")


def test_entry_point_of_the_installed_distribution_loads_get_provider_info() -> None:
    dist = metadata.distribution(DISTRIBUTION)
    (entry_point,) = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert entry_point.value == "rivya_provider.get_provider_info:get_provider_info"
    assert entry_point.load() is get_provider_info


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_every_listed_module_imports(section: str) -> None:
    modules = [m for entry in get_provider_info()[section] for m in entry["python-modules"]]
    assert modules
    for module in modules:
        assert importlib.import_module(module).__name__ == module


def test_listed_modules_define_what_their_section_promises() -> None:
    from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    expected = {
        "hooks": BaseHook,
        "operators": BaseOperator,
        "sensors": BaseSensorOperator,
        "triggers": BaseTrigger,
    }
    info = get_provider_info()
    for section, base in expected.items():
        for entry in info[section]:
            for name in entry["python-modules"]:
                module = importlib.import_module(name)
                defined = [
                    obj
                    for obj in vars(module).values()
                    if isinstance(obj, type) and obj.__module__ == name and issubclass(obj, base)
                ]
                assert defined, f"{name} (listed under {section}) defines no {base.__name__}"


def test_named_classes_exist_and_agree_with_the_metadata() -> None:
    from airflow.providers.common.compat.sdk import BaseHook, BaseOperatorLink

    info = get_provider_info()
    conn_type = _rivya_connection_type()
    hook = _import_object(conn_type["hook-class-name"])
    assert hook is RivyaHook
    assert issubclass(hook, BaseHook)
    assert hook.conn_type == conn_type["connection-type"] == "rivya"
    assert hook.hook_name == conn_type["hook-name"]
    for link_path in info["extra-links"]:
        link = _import_object(link_path)
        assert issubclass(link, BaseOperatorLink)


def test_declared_extra_link_is_the_one_the_operators_carry() -> None:
    from rivya_provider.operators.generate import RivyaGenerateOperator
    from rivya_provider.sensors.generation import RivyaGenerationSensor

    (link_path,) = get_provider_info()["extra-links"]
    link = _import_object(link_path)
    for operator in (RivyaGenerateOperator, RivyaGenerationSensor):
        assert [type(x) for x in operator.operator_extra_links] == [link]


def test_integration_names_refer_to_a_declared_integration() -> None:
    info = get_provider_info()
    declared = {i["integration-name"] for i in info["integrations"]}
    for section in ("hooks", "operators", "sensors", "triggers"):
        assert {entry["integration-name"] for entry in info[section]} <= declared


def test_conn_fields_are_exactly_the_extras_the_hook_accepts() -> None:
    assert set(_rivya_connection_type()["conn-fields"]) == set(ConnectionExtras.model_fields)


def test_conn_field_defaults_are_the_runtime_defaults() -> None:
    fields = _rivya_connection_type()["conn-fields"]
    form_defaults = {name: spec["schema"]["default"] for name, spec in fields.items()}
    settings = settings_from_connection(_connection(form_defaults))
    assert settings == settings_from_connection(_connection(None))
    assert settings.timeouts == Timeouts()
    assert settings.retry == RetryPolicy()


def test_empty_form_fields_are_allowed_by_the_schema_and_the_hook() -> None:
    fields = _rivya_connection_type()["conn-fields"]
    for spec in fields.values():
        jsonschema.validate(None, spec["schema"])
    settings = settings_from_connection(_connection(dict.fromkeys(fields)))
    assert settings.timeouts == Timeouts()
    assert settings.retry == RetryPolicy()


_BOUNDARY_FIELDS = [
    "max_attempts",
    "backoff_max",
    "retry_after_cap",
    "retry_budget",
    "requests_per_second",
]


@pytest.mark.parametrize(
    "field",
    [
        *_BOUNDARY_FIELDS,
        "timeout",
        "connect_timeout",
    ],
)
def test_the_form_limits_are_the_limits_the_hook_accepts(field: str) -> None:
    schema = _rivya_connection_type()["conn-fields"][field]["schema"]
    for bound in ("minimum", "maximum"):
        if bound in schema:
            value = schema[bound]
            jsonschema.validate(value, schema)  # the form accepts it ...
            settings_from_connection(_connection({field: value}))  # ... so must the hook


def test_the_form_rejects_values_the_hook_rejects() -> None:
    fields = _rivya_connection_type()["conn-fields"]
    for bad in (-1, "fast", 21.5):
        for name, spec in fields.items():
            if bad == 21.5 and "maximum" not in spec["schema"]:
                continue
            with pytest.raises(RequestValidationError, match=name):
                settings_from_connection(_connection({name: bad}))
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(bad, spec["schema"])


# --- what Airflow itself makes of the metadata ---------------------------------------------


def test_providers_manager_lists_the_provider() -> None:
    provider = _providers_manager().providers[DISTRIBUTION]
    assert provider.version == __version__
    assert provider.data["package-name"] == DISTRIBUTION


def test_providers_manager_maps_the_connection_type_to_the_hook() -> None:
    hook = task_runtime_hooks()["rivya"]
    assert hook is not None
    assert hook.hook_class_name == HOOK_PATH
    assert hook.connection_id_attribute_name == "rivya_conn_id"
    assert hook.hook_name == "Rivya"
    assert hook.package_name == DISTRIBUTION
    assert hook.connection_testable is True


def _form_extras() -> dict[str, Any]:
    return {
        key: widget
        for key, widget in _providers_manager().connection_form_widgets.items()
        if key.startswith("extra__rivya__")
    }


@pytest.mark.skipif(not form_from_provider_info(), reason="Airflow 3.2+ reads the provider info")
def test_providers_manager_builds_the_connection_form_from_the_provider_info() -> None:
    behaviour = _providers_manager().field_behaviours["rivya"]
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "extra"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert behaviour["placeholders"]["password"].startswith("rvya_sk_")

    widgets = _form_extras()
    assert {w.field_name for w in widgets.values()} == set(ConnectionExtras.model_fields)
    assert {w.hook_class_name for w in widgets.values()} == {HOOK_PATH}
    assert not any(w.is_sensitive for w in widgets.values())  # the key is the password field
    timeout = widgets["extra__rivya__timeout"].field
    assert timeout["schema"]["title"] == "Request timeout (s)"
    assert timeout["value"] == Timeouts().read


def test_the_hook_form_is_the_provider_info_form_with_the_extra_shown() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    declared = conn_type["ui-field-behaviour"]
    behaviour = RivyaHook.get_ui_field_behaviour()
    _validator(_schema("customized_form_field_behaviours.schema.json")).validate(behaviour)
    assert behaviour["hidden_fields"] == [f for f in declared["hidden-fields"] if f != "extra"]
    assert behaviour["relabeling"] == declared["relabeling"]
    assert behaviour["placeholders"] == declared["placeholders"]


def test_the_ui_shows_api_key_on_password_and_base_url_on_host() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    # As in a fresh api-server: other tests' use of the ProvidersManager singleton (on 3.0/3.1
    # it keeps hooks loaded without their form) and the service's cache must not leak in.
    _providers_manager()._cleanup()
    HookMetaService.hook_meta_data.cache_clear()
    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "rivya"]
    assert meta.hook_class_name == HOOK_PATH
    assert meta.hook_name == "Rivya"
    fields = meta.standard_fields
    assert fields is not None
    assert fields.password is not None
    assert fields.password.title == "API key"
    assert not fields.password.hidden
    assert fields.host is not None
    assert fields.host.title == "Base URL"
    assert fields.login is not None
    assert fields.login.hidden
    assert fields.url_schema is not None
    assert fields.url_schema.hidden
    if form_from_provider_info():
        assert set(meta.extra_fields or {}) == set(ConnectionExtras.model_fields)
    else:
        # Airflow 3.0 and 3.1 build the form from RivyaHook.get_ui_field_behaviour: the
        # settings go in the JSON extra, which stays visible.
        assert not meta.extra_fields


def test_providers_manager_registers_trigger_and_extra_link() -> None:
    manager = _providers_manager()
    assert "rivya_provider.links.RivyaResultLink" in manager.extra_links_class_names
    triggers = {t.trigger_class_name for t in manager.trigger if t.package_name == DISTRIBUTION}
    assert triggers == {"rivya_provider.triggers.generation"}


@pytest.mark.parametrize(("environment", "shown"), [({}, "False"), ({"ON": "True"}, "True")])
def test_airflow_config_knows_the_providers_option(environment: dict[str, str], shown: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__RIVYA__FREEZE_TRIGGERER_HEAP"}
    if environment:
        env["AIRFLOW__RIVYA__FREEZE_TRIGGERER_HEAP"] = environment["ON"]
    command = [sys.executable, "-m", "airflow", "config", "get-value", "rivya"]
    answer = subprocess.run(
        [*command, "freeze_triggerer_heap"], env=env, capture_output=True, text=True, timeout=120
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.strip().splitlines()[-1] == shown
