"""Budgets: where an approval caps a host's rate, the route's token bucket keeps within it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..settings import names
from ..settings.config import DURATION, duration_ms
from .graph import index, routed_entries


def budgets_over_ceilings(objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """TrafficPolicies whose token bucket is missing or exceeds the ceiling an approval sets on a host
    they route to (the mark approvals.approval_metadata sets from the registry: requests/per/burst)."""
    by_kind = index(objs)
    problems = []
    for (ns, name), tp in sorted(by_kind.get("TrafficPolicy", {}).items()):
        bucket = (((tp.get("spec") or {}).get("rateLimit") or {}).get("local") or {}).get("tokenBucket")
        for entry in routed_entries(by_kind, ns, tp):
            mark = (((entry or {}).get("metadata") or {}).get("annotations") or {}).get(names.RATE_LIMIT_ANNOTATION)
            if not mark:
                continue
            requests, per, burst = mark.split("/")
            host = ",".join((entry or {}).get("spec", {}).get("hosts") or [])
            if not bucket:
                problems.append(
                    f"TrafficPolicy {name}: {host} is approved for at most {requests}/{per} (burst {burst}); "
                    "set a budget within it"
                )
                continue
            per_fill, fill = int(bucket.get("tokensPerFill", 1)), str(bucket.get("fillInterval", ""))
            too_fast = not DURATION.match(fill) or per_fill * duration_ms(per) > int(requests) * duration_ms(fill)
            if too_fast or int(bucket.get("maxTokens", 0)) > int(burst):
                problems.append(
                    f"TrafficPolicy {name}: its budget exceeds what security approved for {host}: "
                    f"at most {requests}/{per} (burst {burst})"
                )
    return problems
