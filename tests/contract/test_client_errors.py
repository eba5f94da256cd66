"""Every documented error code reaches the caller as its typed error, with code and requestId."""

from __future__ import annotations

from typing import Any

import pytest

from rivya_provider.client import (
    AuthenticationError,
    GenerationRequest,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryPolicy,
    RivyaAPIError,
    ServerError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from tests.contract.conftest import ApiFactory
from tests.contract.targets import Target

pytestmark = pytest.mark.no_airflow

FLEX = GenerationRequest(model="flux-2-flex", prompt="a lighthouse at dawn")
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


async def expect_error(
    call: Any, error: type[RivyaAPIError], code: str, status: int | None = None
) -> RivyaAPIError:
    """Await ``call`` and check the typed error it raises."""
    with pytest.raises(error) as caught:
        await call
    assert caught.value.code == code
    assert (caught.value.request_id or "").startswith("req_"), caught.value
    if status is not None:
        assert caught.value.status_code == status
    return caught.value


async def test_key_problems(api_for: ApiFactory, target: Target) -> None:
    for status in ("revoked", "expired"):
        key = target.add_key(status=status)
        error = await expect_error(
            api_for(api_key=key)("get_credits"), AuthenticationError, f"api_key_{status}", 401
        )
        assert key not in str(error)
    unknown = api_for(api_key="rvya_sk_contract_unknown")
    error = await expect_error(unknown("get_credits"), AuthenticationError, "api_key_invalid", 401)
    assert "rvya_sk_contract_unknown" not in str(error)
    narrow = api_for(api_key=target.add_key(scopes=("models:read", "generations:read")))
    await expect_error(narrow("get_credits"), PermissionDeniedError, "api_scope_denied", 403)


async def test_validation_not_found_and_conflict(api_for: ApiFactory, target: Target) -> None:
    api = api_for()
    bad = FLEX.model_copy(update={"params": {"aspectRatio": "5:4"}})

    await expect_error(
        api("create_generation", bad, validate=False), ValidationFailedError, "validation_failed"
    )
    await expect_error(api("get_generation", "task_contract_missing"), NotFoundError, "not_found")
    await api("create_generation", FLEX, idempotency_key="contract-clash")
    other = FLEX.model_copy(update={"prompt": "another prompt"})
    await expect_error(
        api("create_generation", other, idempotency_key="contract-clash"),
        IdempotencyConflictError,
        "idempotency_conflict",
        409,
    )
    assert target.counters()["tasks_created"] == 1


async def test_insufficient_credits(api_for: ApiFactory, target: Target) -> None:
    target.set_credits(5)
    api = api_for()

    await expect_error(
        api("create_generation", FLEX),
        InsufficientCreditsError,
        "insufficient_credits",
        target.insufficient_status,
    )
    assert target.counters() == {"tasks_created": 0, "credits_charged": 0}


async def test_rate_limited_and_disabled_carry_retry_after(
    api_for: ApiFactory, target: Target
) -> None:
    api = api_for(retry=ONE_ATTEMPT)

    target.fault("rate_limited_next")
    limited = await expect_error(api("get_credits"), RateLimitedError, "rate_limited", 429)
    assert limited.retry_after is not None
    assert limited.retry_after > 0
    target.fault("disabled")
    disabled = await expect_error(
        api("get_credits"), ServiceUnavailableError, "public_api_disabled", 503
    )
    assert disabled.retry_after is not None
    target.heal()
    assert (await api("get_credits")).current_credits > 0


async def test_a_server_error_with_or_without_a_code_is_retried(
    api_for: ApiFactory, target: Target
) -> None:
    target.fault("server_errors_next")
    with pytest.raises(ServerError) as caught:
        await api_for(retry=ONE_ATTEMPT)("get_credits")
    assert caught.value.status_code == 500
    assert caught.value.message

    target.fault("server_errors_next")
    assert (await api_for()("get_credits")).current_credits > 0
