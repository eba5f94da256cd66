"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from rivya_provider import __version__

_INTEGRATION = "Rivya"


def _seconds_field(
    label: str, description: str, default: float | None, *, zero_allowed: bool
) -> dict[str, Any]:
    bound = {"minimum": 0} if zero_allowed else {"exclusiveMinimum": 0}
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["number", "null"], **bound, "default": default},
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider's hooks, operators, sensors, triggers, links and connection form."""
    return {
        "package-name": "airflow-provider-rivya",
        "name": "Rivya",
        "description": "AI image generation with the Rivya Public API v1 (https://rivya.ai).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://rivya.ai/docs/api",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": _INTEGRATION, "python-modules": ["rivya_provider.hooks.rivya"]}
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "rivya_provider.operators.generate",
                    "rivya_provider.operators.budget",
                    "rivya_provider.operators.files",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["rivya_provider.sensors.generation"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["rivya_provider.triggers.generation"],
            }
        ],
        "extra-links": ["rivya_provider.links.RivyaResultLink"],
        # Listed so that `airflow config list` shows the option with its default.
        "config": {
            "rivya": {
                "description": "Settings of the Rivya provider for the processes that run it.",
                "options": {
                    "freeze_triggerer_heap": {
                        "description": "Freeze the triggerer's objects out of Python's garbage "
                        "collector when the first Rivya trigger starts (gc.freeze()), and make "
                        "its full collections ten times rarer (oldest threshold 100): shorter and "
                        "fewer pauses for thousands of waits in one triggerer. It changes "
                        "the whole process, other providers' triggers included; read once per "
                        "process.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    }
                },
            }
        },
        "connection-types": [
            {
                "connection-type": "rivya",
                "hook-class-name": "rivya_provider.hooks.rivya.RivyaHook",
                "hook-name": "Rivya",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://rivya.ai",
                        "port": "optional; 0 = the Base URL's own port",
                        "password": "rvya_sk_...",
                    },
                },
                "conn-fields": {
                    "timeout": _seconds_field(
                        "Request timeout (s)",
                        "Seconds to read or write one HTTP request.",
                        60,
                        zero_allowed=False,
                    ),
                    "connect_timeout": _seconds_field(
                        "Connect timeout (s)",
                        "Seconds to open a connection.",
                        10,
                        zero_allowed=False,
                    ),
                    "max_attempts": {
                        "label": "Attempts per request",
                        "description": "Most tries per request on 429, 5xx and network errors "
                        "(a safety cap; the retry budget is the main limit).",
                        "schema": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "maximum": 50,
                            "default": 12,
                        },
                    },
                    "retry_budget": _seconds_field(
                        "Retry budget (s)",
                        "Seconds a request keeps retrying 429, 5xx and network errors.",
                        120,
                        zero_allowed=True,
                    ),
                    "requests_per_second": {
                        "label": "Requests per second",
                        "description": "Pace API requests to this rate, shared by every task of "
                        "a worker and every wait of a triggerer (empty: no pacing).",
                        "schema": {
                            "type": ["number", "null"],
                            "exclusiveMinimum": 0,
                            "default": None,
                        },
                    },
                    "backoff_max": _seconds_field(
                        "Longest backoff (s)",
                        "Longest pause between two attempts.",
                        30,
                        zero_allowed=True,
                    ),
                    "retry_after_cap": _seconds_field(
                        "Retry-After cap (s)",
                        "Longest Retry-After honoured.",
                        60,
                        zero_allowed=True,
                    ),
                    "request_deadline": _seconds_field(
                        "Request deadline (s)",
                        "Wall-clock seconds one API request may take in total (empty: the "
                        "connect and read timeouts added up, and the write one for uploads).",
                        None,
                        zero_allowed=False,
                    ),
                    "download_deadline": _seconds_field(
                        "Download deadline (s)",
                        "Wall-clock seconds one result download may take in total (empty: the "
                        "connect and read timeouts added up; raise it for large results on "
                        "slow links).",
                        None,
                        zero_allowed=False,
                    ),
                    "max_response_bytes": {
                        "label": "Largest API answer (bytes)",
                        "description": "Cap on one API answer, counted after decompression.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 4194304},
                    },
                    "credit_budget": {
                        "label": "Credit budget per DAG run",
                        "description": "Credits one DAG run may spend: the pre-flight budget "
                        "check and the generate operator's guard use it unless given their own "
                        "(empty: no budget).",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": None},
                    },
                    "period_budget": {
                        "label": "Credit budget per DAG and period",
                        "description": "Credits all runs of one DAG may spend in a calendar "
                        "period (UTC, see Budget period): the pre-flight budget check and the "
                        "generate operator's guard use it unless given their own (empty: none).",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": None},
                    },
                    "budget_period": {
                        "label": "Budget period",
                        "description": "The calendar period (UTC) of the period budget: day, "
                        "week (Monday to Sunday) or month (empty: month).",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["day", "week", "month", None],
                            "default": None,
                        },
                    },
                    "allowed_hosts": {
                        "label": "Allowed private hosts",
                        "description": (
                            "Private or loopback hosts (name or name:port) results may come "
                            "from, besides the Connection's own host."
                        ),
                        "schema": {
                            "type": ["array", "null"],
                            "items": {"type": "string"},
                            "default": [],
                        },
                    },
                },
            }
        ],
    }
