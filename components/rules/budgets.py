"""Budgets: where an approval caps a host's rate, the route's token bucket keeps within it. At
admission from the registry the cluster holds; at preview from the marks the program writes from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..settings import names
from ..settings.config import DURATION, duration_ms
from .cel import HOSTNAMES, ROUTE_POLICIES, TEAM, team_object
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


# --- admission ---------------------------------------------------------------------------------------
RULE = "budgets"


def _within_ceilings(policy: str, hosts: str) -> str:
    """The TrafficPolicy `policy` keeps within every ceiling the approvals of `hosts` set: it has a
    token bucket, no faster (tokensPerFill / fillInterval, compared as integers) and no burstier."""
    bucket = f"{policy}.spec.?rateLimit.?local.?tokenBucket"
    return (
        f"{hosts}.all(h, variables.approvals.filter(a, a.host == h && has(a.rateLimit)).all(a, "
        f"{bucket}.hasValue() && "
        f"int({bucket}.value().?tokensPerFill.orValue(1)) * int(a.rateLimit.perMs) <= "
        f"int(a.rateLimit.requests) * duration({bucket}.value().fillInterval).getMilliseconds() && "
        f"int({bucket}.value().maxTokens) <= int(a.rateLimit.burst)))"
    )


ROUTE_WITHIN_CEILINGS = team_object(
    RULE,
    "HTTPRoute",
    f"{ROUTE_POLICIES}.all(tp, " + _within_ceilings("tp", HOSTNAMES) + ")",
    f"'a TrafficPolicy on this route exceeds the rate or burst security approved for ' + {HOSTNAMES}.join(',') + "
    + TEAM,
)
POLICY_WITHIN_CEILINGS = team_object(
    RULE,
    "TrafficPolicy",
    "object.spec.?targetRefs.orValue([]).all(t, variables.routes.filter(r, r.metadata.name == t.name)"
    ".all(r, " + _within_ceilings("object", "r.spec.?hostnames.orValue([])") + "))",
    "'its budget (rateLimit.local.tokenBucket) must keep within the rate and burst security "
    "approved for the routed hosts' + " + TEAM,
)
