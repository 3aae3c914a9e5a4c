"""Fail-open: an extension fails open only where the approval of every host it guards allows it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..settings import names
from .cel import HOSTNAMES, ROUTE_POLICIES, TEAM, team_object
from .graph import index, routed_entries


def unapproved_fail_open(objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Extensions that fail open without an approval allowing it, for every host they guard.

    `objs` are one stack's objects. An extension fails open only if every route whose TrafficPolicy
    uses it sends to ServiceEntries whose approval allows it (the mark approvals.approval_metadata
    sets from the registry); an extension no policy uses may not fail open either.
    """
    by_kind = index(objs)
    problems = []
    for (ns, name), ext in sorted(by_kind.get("GatewayExtension", {}).items()):
        if not ((ext.get("spec") or {}).get("extAuth") or {}).get("failOpen", False):
            continue
        entries = [
            entry
            for (tp_ns, _), tp in by_kind.get("TrafficPolicy", {}).items()
            if tp_ns == ns and ((tp.get("spec") or {}).get("extAuth") or {}).get("extensionRef", {}).get("name") == name
            for entry in routed_entries(by_kind, ns, tp)
        ]
        allowed = bool(entries) and all(
            e is not None
            and ((e.get("metadata") or {}).get("annotations") or {}).get(names.FAIL_OPEN_ANNOTATION)
            == names.FAIL_OPEN_VALUE
            for e in entries
        )
        if not allowed:
            problems.append(
                f"GatewayExtension {name} fails open, which no approval of the hosts it guards allows "
                f"(security sets allowFailOpen on the approval)"
            )
    return problems


# --- admission ---------------------------------------------------------------------------------------
RULE = "fail-open"
_EXT_NAME = 'object.spec.?extAuth.?extensionRef.?name.orValue("")'


def _fail_open_hosts(routes: str) -> str:
    """Every hostname of the routes named by `routes` (a list of targetRefs) may fail open."""
    return (
        f"{routes}.all(t, variables.routes.filter(r, r.metadata.name == t.name)"
        ".all(r, r.spec.?hostnames.orValue([]).all(h, h in variables.failOpenHosts)))"
    )


ROUTE = team_object(
    RULE,
    "HTTPRoute",
    f"!{ROUTE_POLICIES}.exists(tp, tp.spec.?extAuth.?extensionRef.?name.orValue('') in "
    f"variables.openExtensions) || {HOSTNAMES}.all(h, h in variables.failOpenHosts)",
    f"'its authorization fails open, which the approval of ' + {HOSTNAMES}.join(',') + ' does not allow' + {TEAM}",
)
POLICY = team_object(
    RULE,
    "TrafficPolicy",
    f"!({_EXT_NAME} in variables.openExtensions) || " + _fail_open_hosts("object.spec.?targetRefs.orValue([])"),
    f"'extension ' + {_EXT_NAME} + ' fails open, which the approval of the routed hosts does not allow' + {TEAM}",
)
EXTENSION = team_object(
    RULE,
    "GatewayExtension",
    "!object.spec.?extAuth.?failOpen.orValue(false) || (variables.failOpenHosts.size() > 0 && "
    'variables.policies.filter(tp, tp.spec.?extAuth.?extensionRef.?name.orValue("") == '
    "object.metadata.name).all(tp, " + _fail_open_hosts("tp.spec.?targetRefs.orValue([])") + "))",
    f"'failOpen: true needs an approval that allows it for every host it guards' + {TEAM}",
)
