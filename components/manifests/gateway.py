"""The shared egress gateway's objects: its namespace (ambient), the Gateway and its JSON access log."""

from __future__ import annotations

from ..settings import names
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
    # The caller's mesh identity (spiffe://<trust domain>/ns/<namespace>/sa/<account>): who called.
    "caller": "%DOWNSTREAM_PEER_URI_SAN%",
    "route_name": "%ROUTE_NAME%",
}


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
