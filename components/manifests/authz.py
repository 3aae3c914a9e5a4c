"""Authorization: the Envoy-mode ValidatingPolicies, their files and ConfigMaps, and the authz
server's chart values and policy mount (pure, no Pulumi import)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from ..settings import names
from ..settings.config import Destination, Team
from .kinds import AUTHZ_POLICY_API, REFERENCE_GRANT_API, Obj
from .yamltext import dump_one


def policy_name(team: Team, dest: Destination) -> str:
    return names.object_name("egress", team.name, dest.name)


def _cel_string(value: str) -> str:
    """A CEL string literal (JSON escaping is valid CEL escaping for these characters)."""
    return json.dumps(value)


def condition(dest: Destination) -> str:
    """CEL that is true when the request satisfies every required header of the destination."""
    terms = []
    for header, allowed in sorted(dest.authz.require_headers.items()):
        values = ", ".join(_cel_string(v) for v in allowed)
        terms.append(f'object.attributes.request.http.headers[?{_cel_string(header)}].orValue("") in [{values}]')
    return " && ".join(terms)


HOST_EXPRESSION = 'object.attributes.request.http.host.split(":")[0]'


def destination_policy(team: Team, dest: Destination) -> Obj:
    """Envoy-mode ValidatingPolicy for one destination.

    The matchCondition on the host makes the policy abstain for every other destination's
    requests, so one destination's rule never decides another's.
    """
    return {
        "apiVersion": AUTHZ_POLICY_API,
        "kind": "ValidatingPolicy",
        "metadata": {"name": policy_name(team, dest), "labels": names.labels(team.name, dest.name)},
        "spec": {
            "failurePolicy": "Fail",
            "evaluation": {"mode": "Envoy"},
            "matchConditions": [
                {"name": "destination-host", "expression": f"{HOST_EXPRESSION} == {_cel_string(dest.host)}"}
            ],
            "variables": [{"name": "allowed", "expression": condition(dest)}],
            "validations": [
                {
                    "expression": (
                        "variables.allowed ? envoy.Allowed().Response() : "
                        f"envoy.Denied(403).WithBody({_cel_string(dest.authz.deny_message)}).Response()"
                    )
                }
            ],
        },
    }


def default_deny_policy() -> Obj:
    """Catch-all deny, loaded last: the authz server allows a request no policy matches."""
    return {
        "apiVersion": AUTHZ_POLICY_API,
        "kind": "ValidatingPolicy",
        "metadata": {"name": names.DEFAULT_DENY_POLICY, "labels": names.labels()},
        "spec": {
            "failurePolicy": "Fail",
            "evaluation": {"mode": "Envoy"},
            "validations": [
                {
                    "expression": (
                        'envoy.Denied(403).WithBody("No egress destination is configured for this host").Response()'
                    )
                }
            ],
        },
    }


def policy_file(policy: Obj) -> str:
    """One policy as the YAML file the authz server loads."""
    return dump_one(policy)


def policy_file_name(team: Team, dest: Destination) -> str:
    return f"{policy_name(team, dest)}.yaml"


def team_configmap(team: Team, destinations: Sequence[Destination]) -> Obj:
    """The team's authz policies as files, mounted into the authz server's policy directory."""
    data = {policy_file_name(team, d): policy_file(destination_policy(team, d)) for d in destinations}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(names.authz_configmap(team.name), names.AUTHZ_NAMESPACE, team.name),
        "data": data,
    }


def reference_grant(team: Team) -> Obj:
    """Lets the team's GatewayExtensions reference the authz Service across namespaces."""
    return {
        "apiVersion": REFERENCE_GRANT_API,
        "kind": "ReferenceGrant",
        "metadata": names.metadata(names.object_name("egress-authz", team.name), names.AUTHZ_NAMESPACE, team.name),
        "spec": {
            "from": [{"group": "gateway.kgateway.dev", "kind": "GatewayExtension", "namespace": team.namespace}],
            "to": [{"group": "", "kind": "Service", "name": names.AUTHZ_SERVICE}],
        },
    }


def default_deny_configmap() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(names.authz_configmap("default"), names.AUTHZ_NAMESPACE),
        "data": {names.DEFAULT_DENY_FILE: policy_file(default_deny_policy())},
    }


AUTHZ_POLICY_VOLUME = "egress-authz-policies"


def policy_volume(teams: Sequence[str]) -> Obj:
    """One flat directory from the default-deny ConfigMap and each team's (optional) ConfigMap."""
    sources: list[Obj] = [{"configMap": {"name": names.authz_configmap("default")}}]
    sources += [{"configMap": {"name": names.authz_configmap(t), "optional": True}} for t in sorted(set(teams))]
    return {"name": AUTHZ_POLICY_VOLUME, "projected": {"sources": sources}}


def mount_policies(deployment: Obj, teams: Sequence[str]) -> Obj | None:
    """The authz server Deployment with the policy directory mounted; None for other Deployments.

    The 0.4.0 chart has no values for extra volumes, so the program patches its Deployment.
    """
    template = deployment.get("spec", {}).get("template", {})
    if template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") != "authz-server":
        return None
    out: Obj = copy.deepcopy(deployment)
    pod = out["spec"]["template"]["spec"]
    pod["volumes"] = [*pod.get("volumes", []), policy_volume(teams)]
    for container in pod["containers"]:
        mount = {"name": AUTHZ_POLICY_VOLUME, "mountPath": names.AUTHZ_POLICY_DIR, "readOnly": True}
        container["volumeMounts"] = [*container.get("volumeMounts", []), mount]
    return out


def chart_values(webhook_crt: Any, webhook_key: Any) -> Obj:
    """kyverno-authz-server values: policies from files only (Kyverno's admission webhook rejects
    Envoy-mode ValidatingPolicies, so they cannot live in the cluster as objects)."""
    return {
        "config": {
            "type": "envoy",
            "sources": {"kube": False, "external": [f"file://{names.AUTHZ_POLICY_DIR}"]},
        },
        "validatingWebhookConfiguration": {"certificates": {"static": {"crt": webhook_crt, "key": webhook_key}}},
    }
