"""Authorization: one platform-owned Envoy-mode ValidatingPolicy that decides every request from
the route it arrived on, a default deny in a source of its own, their ConfigMaps, and the authz
server's chart values and policy mounts (pure, no Pulumi import).

What a destination requires travels as data, not as policy code: each destination's TrafficPolicy
carries it in `extAuth.contextExtensions` (`route_context`), kgateway pushes that into Envoy's
per-route ext_authz settings, and Envoy sends it with every Check as
`attributes.context_extensions`. The policy never changes when a team adds, changes or removes a
destination, and no team writes into the authz namespace. It holds one platform fact: which team's
namespace owns which listener port. When the platform's teams change, the policy's digest on the
server's pod template rolls the server (it reads its files once).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..settings import names
from ..settings.config import Destination, Team, TeamEntry
from .kinds import AUTHZ_POLICY_API, REFERENCE_GRANT_API, Obj
from .yamltext import dump_one

# --- the route's context: what one destination requires ----------------------------------------
# Keys of TrafficPolicy spec.extAuth.contextExtensions (-> Envoy ExtAuthzPerRoute
# check_settings.context_extensions -> CheckRequest attributes.context_extensions).
CTX_DESTINATION = "egress-destination"  # team/destination: marks a route as an egress destination's
CTX_NAMESPACE = "egress-namespace"  # the owning team's namespace: only its workloads may call
CTX_HOST = "egress-host"  # the destination's host: the request's host must be this one
CTX_DENY_MESSAGE = "egress-deny-message"  # the body of a denial (data: any Unicode is safe)
CTX_HEADER_PREFIX = "egress-header."  # + header name: its allowed values, one per line
VALUE_SEPARATOR = "\n"  # never part of an HTTP header value (RFC 9110 field values exclude CR and LF)

FALLBACK_DENY_MESSAGE = "Access denied by egress policy"
DEFAULT_DENY_MESSAGE = "No egress destination is configured for this host"


def route_context(team: Team, dest: Destination) -> dict[str, str]:
    """Everything the generic policy needs to decide a request on this destination's route."""
    ctx = {
        CTX_DESTINATION: f"{team.name}/{dest.name}",
        CTX_NAMESPACE: team.namespace,
        CTX_HOST: dest.host,
        CTX_DENY_MESSAGE: dest.authz.deny_message,
    }
    for header, allowed in sorted(dest.authz.require_headers.items()):
        bad = [v for v in allowed if v == "" or any(c in v for c in "\r\n\0")]
        if bad:  # the config refuses these; a value with a newline would split into two allowed values
            raise ValueError(f"header {header!r} of {dest.name}: allowed values cannot be empty or hold CR/LF/NUL")
        ctx[CTX_HEADER_PREFIX + header] = VALUE_SEPARATOR.join(allowed)
    return ctx


# --- the policies --------------------------------------------------------------------------------
APPROVAL_POLICY = "egress-approval-in-force"
APPROVAL_POLICY_FILE = f"{APPROVAL_POLICY}.yaml"
DESTINATION_POLICY = "egress-destination-access"
DESTINATION_POLICY_FILE = f"{DESTINATION_POLICY}.yaml"


def _cel(value: str) -> str:
    """A CEL string literal for the fixed ASCII strings of this module (no user data is ever inlined)."""
    assert value.isascii() and value.isprintable() and '"' not in value and "\\" not in value, value
    return f'"{value}"'


def _ctx(key: str) -> str:
    return f"variables.route[?{_cel(key)}].orValue({_cel('')})"


_HEADER = f"object.attributes.request.http.headers[?k.substring({len(CTX_HEADER_PREFIX)})].orValue({_cel('')})"


def listener_owners(teams: Sequence[TeamEntry]) -> dict[int, str]:
    """Each team listener's port -> the namespace that owns it (the platform's `egress:teams`)."""
    return {t.port: t.namespace for t in teams}


def _owners_literal(owners: Mapping[int, str]) -> str:
    """The port -> namespace map as a CEL map literal (ports as strings; namespaces are DNS labels)."""
    return "{" + ", ".join(f"{_cel(str(port))}: {_cel(ns)}" for port, ns in sorted(owners.items())) + "}"


# Who called. In ambient, ztunnel ends the mesh's mTLS before the gateway and hands kgateway's Envoy
# plain TCP: Envoy fills `source.principal` only from a downstream TLS peer certificate (envoy
# source/extensions/filters/common/ext_authz/check_request_utils.cc, setAttrContextPeer), so there is
# none here. What does arrive is the port the connection came in on (`destination.address`, the
# listener's own port): ztunnel lets only the team's namespace connect to the team's port (the
# platform's AuthorizationPolicy, manifests/mesh.py), and only the team's routes attach to its
# listener (Gateway API allowedRoutes by namespace name, and admission).
_PORT = "string(object.attributes.destination.address.socket_address.port_value)"


def _variables(owners: Mapping[int, str]) -> list[tuple[str, str]]:
    """(name, CEL): the generic policy's variables, in evaluation order."""
    return [
        ("route", "object.attributes.context_extensions"),
        ("listeners", _owners_literal(owners)),
        # The namespace whose listener the request arrived on ("" for a port no team owns).
        ("arrivedFor", f"variables.listeners[?{_PORT}].orValue({_cel('')})"),
        (
            "fromOwner",
            f"variables.arrivedFor != {_cel('')} && variables.arrivedFor == {_ctx(CTX_NAMESPACE)}",
        ),
        (
            "toHost",
            f"object.attributes.request.http.host.split({_cel(':')})[0].lowerAscii() == {_ctx(CTX_HOST)}"
            f" && {_ctx(CTX_HOST)} != {_cel('')}",
        ),
        (
            "withHeaders",
            f"variables.route.all(k, !k.startsWith({_cel(CTX_HEADER_PREFIX)})"
            f' || ({_HEADER} != {_cel("")} && {_HEADER} in variables.route[k].split("\\n")))',
        ),
    ]


# Only a request on an egress route carries its context (TrafficPolicy extAuth.contextExtensions);
# the policies that judge routes abstain for any other.
_ON_EGRESS_ROUTE = {
    "name": "egress-route",
    "expression": f"{_cel(CTX_DESTINATION)} in object.attributes.context_extensions",
}


def _envoy_policy(
    name: str, validation: str, variables: Sequence[tuple[str, str]] = (), routes_only: bool = False
) -> Obj:
    """An Envoy-mode ValidatingPolicy as the authz server loads it: one validation, failing closed."""
    spec: dict[str, Any] = {"failurePolicy": "Fail", "evaluation": {"mode": "Envoy"}}
    if routes_only:
        spec["matchConditions"] = [dict(_ON_EGRESS_ROUTE)]
    if variables:
        spec["variables"] = [{"name": n, "expression": e} for n, e in variables]
    spec["validations"] = [{"expression": validation}]
    return {
        "apiVersion": AUTHZ_POLICY_API,
        "kind": "ValidatingPolicy",
        "metadata": {"name": name, "labels": names.labels()},
        "spec": spec,
    }


def destination_policy(owners: Mapping[int, str]) -> Obj:
    """The one Envoy-mode ValidatingPolicy for every destination of every team.

    It abstains for a request without an egress route's context (the default deny, in the last
    source, decides those) and otherwise allows only when the request arrived on the listener of the
    route's owning namespace (`owners`: port -> namespace, the platform's), the host is the route's
    host, and every required header carries one of its allowed values; else it denies with the
    route's message.
    """
    return _envoy_policy(
        DESTINATION_POLICY,
        "variables.fromOwner && variables.toHost && variables.withHeaders ? envoy.Allowed().Response()"
        f" : envoy.Denied(403).WithBody(variables.route[?{_cel(CTX_DENY_MESSAGE)}]"
        f".orValue({_cel(FALLBACK_DENY_MESSAGE)})).Response()",
        _variables(owners),
        routes_only=True,
    )


ENDED_MESSAGE = "egress: the approval of this host for this team has ended (revoked or expired)"


def approval_grants(teams: Sequence[TeamEntry], approvals: Sequence[Any]) -> dict[str, dict[str, str]]:
    """The registry as authorization reads it: team namespace -> approved host -> the approval's expiry
    instant, the end of its last day (UTC; the latest, where several approvals cover the host)."""
    grants: dict[str, dict[str, str]] = {}
    for t in teams:
        for a in approvals:
            if t.name in a.teams:
                end = f"{a.expires.isoformat()}T23:59:59Z"
                hosts = grants.setdefault(t.namespace, {})
                hosts[a.host] = max(hosts.get(a.host, end), end)
    return grants


def _grants_literal(grants: Mapping[str, Mapping[str, str]]) -> str:
    """namespace -> host -> instant as a CEL map literal (names and hosts are DNS names: _cel checks)."""

    def hosts(ns: str) -> str:
        return "{" + ", ".join(f"{_cel(h)}: {_cel(e)}" for h, e in sorted(grants[ns].items())) + "}"

    return "{" + ", ".join(f"{_cel(ns)}: {hosts(ns)}" for ns in sorted(grants)) + "}"


def approval_policy(grants: Mapping[str, Mapping[str, str]]) -> Obj:
    """Denies a request on an egress route unless the registry (`grants`, approval_grants) holds an
    approval of the route's host for the route's namespace whose expiry instant has not passed at the
    time Envoy received the request (`request.time`: check_request_utils.cc setRequestTime); otherwise
    it abstains (null) and the destination policy decides. An expiry stops traffic at its instant; a
    revocation with the platform's next `pulumi up`, which changes this policy's file and so, by the
    policies' digest on the server's pod template, rolls the server (it reads its files once). A request
    without a time is denied. The grants are data of the policy, not a read per request: kyverno-authz's
    `resource.Get` is an API server GET per Check, with no cache (docs/authz-server.md)."""
    ctx = "object.attributes.context_extensions"
    until = (
        f"variables.grants[?{ctx}[?{_cel(CTX_NAMESPACE)}].orValue({_cel('')})].orValue({{}})"
        f"[?{ctx}[?{_cel(CTX_HOST)}].orValue({_cel('')})].orValue({_cel('')})"
    )
    in_force = (
        f"has(object.attributes.request.time) && variables.until != {_cel('')} && "
        "timestamp(variables.until) >= object.attributes.request.time"
    )
    return _envoy_policy(
        APPROVAL_POLICY,
        f"variables.inForce ? null : envoy.Denied(403).WithBody({_cel(ENDED_MESSAGE)}).Response()",
        [("grants", _grants_literal(grants)), ("until", until), ("inForce", in_force)],
        routes_only=True,
    )


def default_deny_policy() -> Obj:
    """Catch-all deny, in the last source: the authz server allows a request no policy decides."""
    return _envoy_policy(
        names.DEFAULT_DENY_POLICY, f"envoy.Denied(403).WithBody({_cel(DEFAULT_DENY_MESSAGE)}).Response()"
    )


def policy_file(policy: Obj) -> str:
    """One policy as the YAML file the authz server loads."""
    return dump_one(policy)


# --- ConfigMaps, mounts and chart values ---------------------------------------------------------
APPROVAL_CONFIGMAP = names.authz_configmap("approvals")
APPROVAL_DIR = "/etc/egress-authz/approvals"
DESTINATION_CONFIGMAP = "egress-authz-policy"
DEFAULT_DENY_CONFIGMAP = names.authz_configmap("default")
DEFAULT_DENY_DIR = "/etc/egress-authz/default-deny"


def _configmap(name: str, file_name: str, policy: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.metadata(name, names.AUTHZ_NAMESPACE),
        "data": {file_name: policy_file(policy)},
    }


def approval_configmap(grants: Mapping[str, Mapping[str, str]]) -> Obj:
    return _configmap(APPROVAL_CONFIGMAP, APPROVAL_POLICY_FILE, approval_policy(grants))


def destination_configmap(owners: Mapping[int, str]) -> Obj:
    return _configmap(DESTINATION_CONFIGMAP, DESTINATION_POLICY_FILE, destination_policy(owners))


def default_deny_configmap() -> Obj:
    return _configmap(DEFAULT_DENY_CONFIGMAP, names.DEFAULT_DENY_FILE, default_deny_policy())


def platform_configmaps(owners: Mapping[int, str], grants: Mapping[str, Mapping[str, str]] | None = None) -> list[Obj]:
    """The platform's policy ConfigMaps, in source order: the approvals in force first (it only denies),
    the destination policy, the default deny last. `owners`: each team listener's port -> its namespace
    (listener_owners); `grants`: the approvals (approval_grants; none: every egress route is denied)."""
    return [approval_configmap(grants or {}), destination_configmap(owners), default_deny_configmap()]


def policies_digest(configmaps: Sequence[Obj]) -> str:
    """A digest of the policy files: on the server's pod template, so a changed file (a team added,
    say) rolls the server, which reads its files once."""
    text = json.dumps([cm["data"] for cm in configmaps], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PolicySource:
    """One policy source of the authz server: a ConfigMap mounted as a directory of its own."""

    role: str  # names the volume and the program's resource
    configmap: str
    directory: str

    @property
    def volume(self) -> str:
        return f"egress-authz-{self.role}"

    @property
    def url(self) -> str:
        return f"file://{self.directory}"


# In the order the server evaluates them. Each source is a directory of its own: a policy that fails
# to load drops only its own source, and the server's order within a source is not defined (see
# docs/authz-server.md); the default deny comes last.
POLICY_SOURCES: tuple[PolicySource, ...] = (
    PolicySource("approval-policy", APPROVAL_CONFIGMAP, APPROVAL_DIR),
    PolicySource("destination-policy", DESTINATION_CONFIGMAP, names.AUTHZ_POLICY_DIR),
    PolicySource("default-deny", DEFAULT_DENY_CONFIGMAP, DEFAULT_DENY_DIR),
)


def source_of(configmap: Obj) -> PolicySource:
    """The policy source a ConfigMap of platform_configmaps() is mounted as."""
    return next(s for s in POLICY_SOURCES if s.configmap == configmap["metadata"]["name"])


POLICIES_DIGEST_ANNOTATION = "egress.corp/authz-policies"


def mount_policies(deployment: Obj, digest: str) -> Obj | None:
    """The authz server Deployment with one directory per policy source and the policies' digest on
    its pod template (policies_digest); None for other Deployments.

    The 0.4.0 chart has no values for extra volumes, so the program patches its Deployment.
    """
    template = deployment.get("spec", {}).get("template", {})
    if template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") != "authz-server":
        return None
    out: Obj = copy.deepcopy(deployment)
    meta = out["spec"]["template"].setdefault("metadata", {})
    meta["annotations"] = {**meta.get("annotations", {}), POLICIES_DIGEST_ANNOTATION: digest}
    pod = out["spec"]["template"]["spec"]
    pod["volumes"] = [
        *pod.get("volumes", []),
        *({"name": s.volume, "configMap": {"name": s.configmap}} for s in POLICY_SOURCES),
    ]
    for container in pod["containers"]:
        mounts = [{"name": s.volume, "mountPath": s.directory, "readOnly": True} for s in POLICY_SOURCES]
        container["volumeMounts"] = [*container.get("volumeMounts", []), *mounts]
    return out


# A matchCondition that errors fails the webhook's request closed: test each field before reading it.
ENVOY_MODE_ONLY = {
    "name": "envoy-mode-only",
    "expression": (
        "has(object.spec) && has(object.spec.evaluation) && has(object.spec.evaluation.mode) && "
        "object.spec.evaluation.mode == 'Envoy'"
    ),
}


def scope_validation_webhook(config: Obj) -> Obj:
    """The chart's validation webhook, limited to Envoy-mode ValidatingPolicies.

    The chart registers it for every `policies.kyverno.io` ValidatingPolicy, so it would also judge
    (and, while its server is not up, refuse) Kyverno's own admission policies, which are not its to
    judge. Ours never put Envoy-mode policies in the cluster (they are files), so it never fires.
    """
    out: Obj = copy.deepcopy(config)
    for hook in out.get("webhooks") or []:
        hook["matchConditions"] = [*hook.get("matchConditions", []), dict(ENVOY_MODE_ONLY)]
    return out


def chart_values(webhook_crt: Any, webhook_key: Any) -> Obj:
    """kyverno-authz-server values: policies from files only (Kyverno's admission webhook rejects
    Envoy-mode ValidatingPolicies, so they cannot live in the cluster as objects); the chart passes
    one `--external-policy-source` per entry, in this order."""
    return {
        "config": {"type": "envoy", "sources": {"kube": False, "external": [s.url for s in POLICY_SOURCES]}},
        "validatingWebhookConfiguration": {"certificates": {"static": {"crt": webhook_crt, "key": webhook_key}}},
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
