"""The shared egress gateway's objects: its namespace (ambient), the Gateway, its JSON access log, a
listener per team (ListenerSets), and the mesh's policies on its pods (manifests/mesh.py)."""

from __future__ import annotations

from collections.abc import Sequence

from ..settings import names
from ..settings.config import TeamEntry
from . import mesh
from .kinds import GATEWAY_API, KGATEWAY_API, Obj

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
    # The listener's port the request arrived on: each team has its own (egress:teams), so who called.
    # (No peer certificate reaches the gateway in ambient: ztunnel ends the mesh's mTLS before it.)
    "listener_port": "%DOWNSTREAM_LOCAL_PORT%",
    "route_name": "%ROUTE_NAME%",
}


def gateway_namespace() -> Obj:
    meta = names.metadata(names.GATEWAY_NAMESPACE, None)
    meta["labels"][names.AMBIENT_LABEL] = names.AMBIENT_VALUE
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def egress_gateway() -> Obj:
    """The one exit. Its own listener admits no route (only from the gateway's namespace, where no
    route is ever made; Gateway API requires one listener); every team listener is a ListenerSet of
    the gateway's namespace (the platform's), one per team."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": names.metadata(names.GATEWAY_NAME, names.GATEWAY_NAMESPACE),
        "spec": {
            "gatewayClassName": names.GATEWAY_CLASS,
            "allowedListeners": {"namespaces": {"from": "Same"}},
            "listeners": [
                {
                    "name": names.GATEWAY_LISTENER,
                    "protocol": "HTTP",
                    "port": names.GATEWAY_PORT,
                    "allowedRoutes": {
                        "namespaces": {"from": "Same"},
                        "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                    },
                }
            ],
        },
    }


def team_listener_set(team: TeamEntry) -> Obj:
    """The team's own listener on the shared gateway: plain HTTP on the port the platform assigned
    (ztunnel ends the mesh's mTLS before Envoy), routes only from the team's namespace, chosen by
    `kubernetes.io/metadata.name`, which the API server sets to the namespace's name and nobody can
    change (a label a namespace owner sets could claim another team's listener)."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "ListenerSet",
        "metadata": names.metadata(names.team_listener_set(team.name), names.GATEWAY_NAMESPACE, team.name),
        "spec": {
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": names.GATEWAY_NAME},
            "listeners": [
                {
                    "name": names.TEAM_LISTENER,
                    "protocol": "HTTP",
                    "port": team.port,
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {"matchLabels": {names.NAMESPACE_NAME_LABEL: team.namespace}},
                        },
                        "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                    },
                }
            ],
        },
    }


def team_parent_ref(team: str) -> Obj:
    """Where a team's HTTPRoutes attach: its own listener, and no other."""
    return {
        "group": "gateway.networking.k8s.io",
        "kind": "ListenerSet",
        "name": names.team_listener_set(team),
        "namespace": names.GATEWAY_NAMESPACE,
        "sectionName": names.TEAM_LISTENER,
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


def gateway_objects(teams: Sequence[TeamEntry]) -> list[Obj]:
    """Objects of the shared egress gateway, in creation order: namespace, Gateway, access log, then
    per team its ListenerSet, then the mesh's policies on the gateway's pods."""
    return [
        gateway_namespace(),
        egress_gateway(),
        access_log_policy(),
        *(team_listener_set(t) for t in teams),
        *mesh.mesh_objects(teams),
    ]
