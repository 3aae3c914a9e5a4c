"""Bounds: a route's TrafficPolicy bounds the request (a timeout of at most 5m, bounded attempts, each
try below the timeout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..settings.config import DURATION, MAX_RETRY_ATTEMPTS, MAX_TIMEOUT_MS, duration_ms
from .cel import team_object


def check_retries_and_timeouts(spec: Mapping[str, Any], max_attempts: int = MAX_RETRY_ATTEMPTS) -> list[str]:
    """A TrafficPolicy must bound the request: a timeout, bounded attempts, per-try below the timeout."""
    problems = []
    request = (spec.get("timeouts") or {}).get("request")
    if not request or not DURATION.match(str(request)):
        problems.append("timeouts.request must be set to a duration (e.g. 30s)")
    elif duration_ms(request) > MAX_TIMEOUT_MS:
        problems.append(f"timeouts.request {request} exceeds 5m")
    retry = spec.get("retry")
    if retry is not None:
        attempts = retry.get("attempts", 1)
        # The engine hands numbers to policies as floats.
        if not isinstance(attempts, (int, float)) or attempts != int(attempts) or attempts > max_attempts:
            problems.append(f"retry.attempts must be an integer of at most {max_attempts}, got {attempts}")
        per_try = retry.get("perTryTimeout")
        if not per_try:
            problems.append("retry.perTryTimeout must be set")
        elif request and DURATION.match(str(request)) and duration_ms(per_try) >= duration_ms(request):
            problems.append(f"retry.perTryTimeout {per_try} must be below timeouts.request {request}")
    return problems


# --- admission ---------------------------------------------------------------------------------------
RULE = "bounds"

RETRIES_AND_TIMEOUTS = team_object(
    RULE,
    "TrafficPolicy",
    f'duration(object.spec.?timeouts.?request.orValue("0s")) > duration("0s") && '
    f'duration(object.spec.timeouts.request) <= duration("{MAX_TIMEOUT_MS}ms") && '
    "(!has(object.spec.retry) || (int(object.spec.retry.?attempts.orValue(1)) <= "
    f'{MAX_RETRY_ATTEMPTS} && duration(object.spec.retry.?perTryTimeout.orValue("0s")) > duration("0s") '
    "&& duration(object.spec.retry.perTryTimeout) < duration(object.spec.timeouts.request)))",
    f"'timeouts.request is set and at most {MAX_TIMEOUT_MS // 60_000}m; retry.attempts at most "
    f"{MAX_RETRY_ATTEMPTS}, retry.perTryTimeout set and below timeouts.request'",
)
