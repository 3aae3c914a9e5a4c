"""The negative control: the destination policy as it was before the team listeners, deciding by the
caller's mesh identity in `source.principal`.

In ambient no peer certificate reaches a kgateway Gateway (ztunnel ends the mesh's mTLS before Envoy;
Envoy fills `source.principal` only from a downstream TLS peer certificate: envoy
source/extensions/filters/common/ext_authz/check_request_utils.cc, setAttrContextPeer), so this
policy denies even the owner's request with the right headers. The sandbox runs it to show that its
gateway is as faithful as that: the same request the current policy allows, this one denies.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.manifests import authz
from components.manifests.kinds import Obj

_OWNER_NS = 'variables.route[?"egress-namespace"].orValue("")'

# The previous policy's identity variables (principal: spiffe://<trust domain>/ns/<ns>/sa/<sa>).
PRINCIPAL_VARIABLES = [
    {"name": "principal", "expression": "object.attributes.source.principal"},
    {"name": "caller", "expression": 'variables.principal.split("/")'},
    {
        "name": "fromOwner",
        "expression": (
            'variables.principal.startsWith("spiffe://") && size(variables.caller) == 7'
            ' && variables.caller[2] != "" && variables.caller[3] == "ns"'
            ' && variables.caller[5] == "sa" && variables.caller[6] != ""'
            f' && variables.caller[4] != "" && variables.caller[4] == {_OWNER_NS}'
        ),
    },
]
_REPLACED = {"listeners", "arrivedFor", "fromOwner"}


def principal_policy(owners: Mapping[int, str]) -> Obj:
    """The current destination policy with the previous identity check in place of the port check."""
    policy = authz.destination_policy(owners)
    kept = [v for v in policy["spec"]["variables"] if v["name"] not in _REPLACED]
    policy["spec"]["variables"] = [kept[0], *PRINCIPAL_VARIABLES, *kept[1:]]
    return policy


def configmaps(owners: Mapping[int, str], grants: Mapping[str, Mapping[str, str]]) -> list[Obj]:
    """The negative control's policy sources: the approvals in force, the principal-based policy, then
    the default deny."""
    approvals, current, deny = authz.platform_configmaps(owners, grants)
    principal = {**current, "data": {authz.DESTINATION_POLICY_FILE: authz.policy_file(principal_policy(owners))}}
    return [approvals, principal, deny]
