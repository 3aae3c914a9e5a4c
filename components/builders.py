"""Pure builders: stack config in, plain Kubernetes object dicts out (no Pulumi import).

The program, `components.render` and the schema tests all call these, so what is rendered and
checked is exactly what `pulumi up` creates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import approvals as approval_registry
from . import authz, names
from .config import Approval, Destination, Team

Obj = dict[str, Any]

SERVICE_ENTRY_API = "networking.istio.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
KGATEWAY_API = "gateway.kgateway.dev/v1alpha1"

# Fields of the gateway's JSON access log (Envoy command operators).
ACCESS_LOG_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "authority": "%REQ(:AUTHORITY)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "upstream_request_attempt_count": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "duration_ms": "%DURATION%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}


def resource_name(dest: Destination) -> str:
    """Name shared by a destination's objects in the team namespace."""
    return names.object_name("egress", dest.name)


def extension_name(dest: Destination) -> str:
    return names.object_name("egress", dest.name, "authz")


# --- team namespace -------------------------------------------------------------------------


def namespace(team: Team) -> Obj:
    meta = names.metadata(team.namespace, None, team.name)
    meta["labels"][names.AMBIENT_LABEL] = names.AMBIENT_VALUE
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def network_policy(team: Team) -> Obj:
    """Pods of the team may reach only cluster DNS and the egress gateway: nothing bypasses it.

    In ambient mode ztunnel carries pod traffic to the gateway over HBONE (15008), so that port
    is allowed next to the gateway's listener port.
    """
    gateway_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": names.GATEWAY_NAMESPACE}},
        "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": names.GATEWAY_NAME}},
    }
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.metadata("egress-only-via-gateway", team.namespace, team.name),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [dns_peer],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    "to": [gateway_peer],
                    "ports": [
                        {"protocol": "TCP", "port": names.GATEWAY_PORT},
                        {"protocol": "TCP", "port": names.HBONE_PORT},
                    ],
                },
            ],
        },
    }


# --- per destination ------------------------------------------------------------------------


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


def http_route(team: Team, dest: Destination) -> Obj:
    """Route on the shared egress Gateway: requests for the host go to the ServiceEntry."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": names.metadata(resource_name(dest), team.namespace, team.name, dest.name),
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": names.GATEWAY_NAME,
                    "namespace": names.GATEWAY_NAMESPACE,
                    "sectionName": names.GATEWAY_LISTENER,
                }
            ],
            "hostnames": [dest.host],
            "rules": [
                {
                    "backendRefs": [
                        {
                            "group": "networking.istio.io",
                            "kind": "ServiceEntry",
                            "name": resource_name(dest),
                            "port": dest.port,
                        }
                    ]
                }
            ],
        },
    }


def traffic_policy(team: Team, dest: Destination) -> Obj:
    """Retries and timeouts for the upstream call, and external authorization on the route.

    Retries apply to the upstream request only, never to the authorization call.
    """
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "TrafficPolicy",
        "metadata": names.metadata(resource_name(dest), team.namespace, team.name, dest.name),
        "spec": {
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
                # Lets the authz policy scope itself without relying on the Host header alone.
                "contextExtensions": {"egress-destination": f"{team.name}/{dest.name}"},
            },
        },
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
                    }
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
            "tls": {"sni": dest.host, "wellKnownCACertificates": "System"},
        },
    }


def destination_objects(
    team: Team,
    dest: Destination,
    addresses: Sequence[Any] | None = None,
    approval: Approval | None = None,
    today: Any = None,
) -> list[Obj]:
    """Every object of one destination in the team namespace, in creation order."""
    objs = [
        service_entry(team, dest, addresses, approval, today),
        http_route(team, dest),
        gateway_extension(team, dest),
        traffic_policy(team, dest),
    ]
    tls = backend_tls_policy(team, dest)
    if tls is not None:
        objs.append(tls)
    return objs


# --- shared egress gateway (platform) ------------------------------------------------------------


def gateway_namespace() -> Obj:
    meta = names.metadata(names.GATEWAY_NAMESPACE, None)
    meta["labels"][names.AMBIENT_LABEL] = names.AMBIENT_VALUE
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def egress_gateway() -> Obj:
    """The one exit: an HTTP listener that accepts routes from team namespaces only."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": names.metadata(names.GATEWAY_NAME, names.GATEWAY_NAMESPACE),
        "spec": {
            "gatewayClassName": names.GATEWAY_CLASS,
            "listeners": [
                {
                    "name": names.GATEWAY_LISTENER,
                    "protocol": "HTTP",
                    "port": names.GATEWAY_PORT,
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {"matchExpressions": [{"key": names.TEAM_LABEL, "operator": "Exists"}]},
                        },
                        "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                    },
                }
            ],
        },
    }


def access_log_policy() -> Obj:
    """JSON access log on the gateway: response flags and attempt counts make retries visible."""
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "ListenerPolicy",
        "metadata": names.metadata(names.ACCESS_LOG_POLICY, names.GATEWAY_NAMESPACE),
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": names.GATEWAY_NAME}],
            "default": {
                "httpSettings": {
                    "accessLog": [{"fileSink": {"path": "/dev/stdout", "jsonFormat": dict(ACCESS_LOG_FORMAT)}}]
                }
            },
        },
    }


def gateway_objects() -> list[Obj]:
    """Objects of the shared egress gateway, in creation order."""
    return [gateway_namespace(), egress_gateway(), access_log_policy()]


def team_objects(
    team: Team,
    destinations: Sequence[Destination],
    registry: Sequence[Approval],
    today: Any,
    overrides: dict[str, Sequence[Any]] | None = None,
) -> list[Obj]:
    """Everything a team's stack creates directly: namespace, bypass guard, destinations, authz."""
    overrides = overrides or {}
    objs = [namespace(team), network_policy(team)]
    for d in destinations:
        approval = approval_registry.covering(registry, d.host, d.port, team.name)
        objs.extend(destination_objects(team, d, overrides.get(d.name), approval, today))
    if destinations:
        objs.append(authz.reference_grant(team))
        objs.append(authz.team_configmap(team, destinations))
    return objs
