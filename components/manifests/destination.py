"""One destination's objects in its team namespace: ServiceEntry, HTTPRoute, GatewayExtension,
TrafficPolicy, and BackendConfigPolicy for HTTPS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..settings import names
from ..settings.config import MIN_FILL_MS, Approval, Budget, Destination, Team, duration_ms
from . import approvals as approval_registry
from .authz import route_context
from .gateway import team_parent_ref
from .kinds import GATEWAY_API, KGATEWAY_API, SERVICE_ENTRY_API, Obj


def resource_name(dest: Destination) -> str:
    """Name shared by a destination's objects in the team namespace."""
    return names.object_name("egress", dest.name)


def extension_name(dest: Destination) -> str:
    return names.object_name("egress", dest.name, "authz")


def service_entry(
    team: Team,
    dest: Destination,
    addresses: Sequence[Any] | None = None,
    approval: Approval | None = None,
    today: Any = None,
) -> Obj:
    """MESH_EXTERNAL entry for the host; STATIC endpoints when addresses are known, else DNS.

    `addresses` overrides the config's (the platform passes the Ollama container's address).
    Approved entries carry the approval label and its ticket, approver and expiry; an entry
    without approval is still emitted, unlabeled, so the policies report it by name.
    """
    endpoints = list(addresses) if addresses is not None else dest.addresses
    spec: Obj = {
        "hosts": [dest.host],
        "location": "MESH_EXTERNAL",
        "ports": [{"number": dest.port, "name": dest.protocol.lower(), "protocol": dest.protocol}],
        "resolution": "STATIC" if endpoints else "DNS",
    }
    if endpoints:
        spec["endpoints"] = [{"address": a} for a in endpoints]
    meta = names.metadata(resource_name(dest), team.namespace, team.name, dest.name)
    labels, annotations = approval_registry.approval_metadata(approval, today)
    meta["labels"].update(labels)
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": SERVICE_ENTRY_API, "kind": "ServiceEntry", "metadata": meta, "spec": spec}


def policy_filter(dest: Destination) -> Obj:
    """The route rule's filter that names its TrafficPolicy. The policy also targets the route; named
    here as well, its absence is an unresolved filter, and kgateway then answers the rule with a 500
    instead of forwarding without authorization (Gateway API: an unresolvable ExtensionRef filter is
    never skipped; kgateway's irtranslator finalizeRoute replaces the rule with a direct response)."""
    return {
        "type": "ExtensionRef",
        "extensionRef": {"group": "gateway.kgateway.dev", "kind": "TrafficPolicy", "name": resource_name(dest)},
    }


def http_route(team: Team, dest: Destination) -> Obj:
    """Route on the team's own listener of the shared egress Gateway: requests for the host go to the
    ServiceEntry, through the route's TrafficPolicy (named by the rule's filter)."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": names.metadata(resource_name(dest), team.namespace, team.name, dest.name),
        "spec": {
            "parentRefs": [team_parent_ref(team.name)],
            "hostnames": [dest.host],
            "rules": [
                {
                    "filters": [policy_filter(dest)],
                    "backendRefs": [
                        {
                            "group": "networking.istio.io",
                            "kind": "ServiceEntry",
                            "name": resource_name(dest),
                            "port": dest.port,
                        }
                    ],
                }
            ],
        },
    }


def token_bucket(budget: Budget) -> Obj:
    """The budget as kgateway's token bucket, refilled one token at a time where the interval allows
    (smoother than the whole budget at once), else `requests` tokens every `per`."""
    per_ms = duration_ms(budget.per)
    step, rest = divmod(per_ms, budget.requests)
    if rest == 0 and step >= MIN_FILL_MS:
        return {"maxTokens": budget.max_tokens, "tokensPerFill": 1, "fillInterval": f"{step}ms"}
    return {"maxTokens": budget.max_tokens, "tokensPerFill": budget.requests, "fillInterval": budget.per}


def credential_secret_ref(team: Team, dest: Destination) -> Obj:
    """Where the gateway reads the destination's credential: the team's Secret (platform-made, named
    after its namespace) in CREDENTIALS_NAMESPACE, one key per destination."""
    return {"name": team.namespace, "namespace": names.CREDENTIALS_NAMESPACE, "key": dest.name}


def traffic_policy(team: Team, dest: Destination) -> Obj:
    """Retries and timeouts for the upstream call, external authorization on the route, and where the
    destination says so, its budget (a local token bucket) and its credential (a header the gateway
    sets on the upstream request, overwriting the client's).

    Retries apply to the upstream request only, never to the authorization call. A change here
    (headers, message) reaches the authz server with the next request: no policy file changes.
    """
    spec: Obj = {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": resource_name(dest)}],
        "timeouts": {"request": dest.timeout},
        "retry": {
            "attempts": dest.retries.attempts,
            "perTryTimeout": dest.retries.per_try_timeout,
            "statusCodes": list(dest.retries.status_codes),
            "retryOn": list(dest.retries.retry_on),
        },
        "extAuth": {
            "extensionRef": {"name": extension_name(dest)},
            # What the platform's one authz policy decides this route's requests by (data, pushed
            # live to the gateway): owning namespace, host, required headers, deny message.
            "contextExtensions": route_context(team, dest),
        },
    }
    if dest.budget is not None:
        spec["rateLimit"] = {"local": {"tokenBucket": token_bucket(dest.budget)}}
    if dest.credential is not None:
        header = {"name": dest.credential.header, "secretRef": credential_secret_ref(team, dest)}
        spec["headerModifiers"] = {"request": {"set": [header]}}
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "TrafficPolicy",
        "metadata": names.metadata(resource_name(dest), team.namespace, team.name, dest.name),
        "spec": spec,
    }


def gateway_extension(team: Team, dest: Destination) -> Obj:
    """ExtAuth over gRPC to the Kyverno authz server; fail closed unless the destination says so."""
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "GatewayExtension",
        "metadata": names.metadata(extension_name(dest), team.namespace, team.name, dest.name),
        "spec": {
            "type": "ExtAuth",
            "extAuth": {
                "failOpen": dest.fail_open,
                "grpcService": {
                    "backendRef": {
                        "name": names.AUTHZ_SERVICE,
                        "namespace": names.AUTHZ_NAMESPACE,
                        "port": names.AUTHZ_GRPC_PORT,
                    },
                    # kgateway sets no timeout of its own on a gRPC service, leaving Envoy's 200 ms:
                    # too tight for the first Check of a busy server (it loads its policies then).
                    "requestTimeout": names.AUTHZ_REQUEST_TIMEOUT,
                },
            },
        },
    }


def backend_tls_policy(team: Team, dest: Destination) -> Obj | None:
    """For HTTPS destinations the gateway originates TLS to the host, verifying it with system CAs."""
    if dest.protocol != "HTTPS":
        return None
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "BackendConfigPolicy",
        "metadata": names.metadata(resource_name(dest), team.namespace, team.name, dest.name),
        "spec": {
            "targetRefs": [{"group": "networking.istio.io", "kind": "Hostname", "name": dest.host}],
            # The upstream must prove it is the approved host: its certificate, from the system CAs,
            # must name it.
            "tls": {"sni": dest.host, "wellKnownCACertificates": "System", "verifySubjectAltNames": [dest.host]},
        },
    }


CREDENTIAL_PLACEHOLDER = "(secret: egress:credentials.{})"


def credential_secret(team: Team, destinations: Sequence[Destination]) -> Obj | None:
    """The team's credentials as the team stack writes them into its Secret (a patch of the
    platform's object): one key per destination with a credential. The values here are placeholders
    naming the config key; the program sets the real ones, as secrets, and nothing else ever sees them."""
    keys = {d.name: CREDENTIAL_PLACEHOLDER.format(d.credential.secret) for d in destinations if d.credential}
    if not keys:
        return None
    meta = names.metadata(team.namespace, names.CREDENTIALS_NAMESPACE, team.name)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": keys}


def destination_objects(
    team: Team,
    dest: Destination,
    addresses: Sequence[Any] | None = None,
    approval: Approval | None = None,
    today: Any = None,
) -> list[Obj]:
    """Every object of one destination in the team namespace, in creation order."""
    # The route last but for TLS: admission admits a route on the gateway only once a TrafficPolicy
    # with external authorization covers it (and refuses deleting that policy while the route exists).
    objs = [
        service_entry(team, dest, addresses, approval, today),
        gateway_extension(team, dest),
        traffic_policy(team, dest),
        http_route(team, dest),
    ]
    tls = backend_tls_policy(team, dest)
    if tls is not None:
        objs.append(tls)
    return objs
