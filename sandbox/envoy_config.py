"""The only place that stands in for kgateway: stack config -> an Envoy bootstrap for the sandbox.

Each field mirrors one field of the objects the builders emit (components/builders.py); nothing is
tuned for the scenarios. Correspondence:

| Envoy (this module)                                  | kgateway / Gateway API object it mirrors                |
|------------------------------------------------------|---------------------------------------------------------|
| listener on 127.0.0.1, HTTP connection manager        | Gateway `egress-gateway`, listener `http`               |
| virtual host per destination, `domains: [host, host:*]` | HTTPRoute `hostnames: [host]`                         |
| route `/` prefix -> cluster `dest-<name>`            | HTTPRoute rule `backendRefs: [ServiceEntry]`            |
| cluster STATIC endpoint = the local stand-in          | ServiceEntry `endpoints` (the sandbox's one substitution) |
| route `timeout`                                       | TrafficPolicy `timeouts.request`                        |
| route `retry_policy.num_retries`                      | TrafficPolicy `retry.attempts`                          |
| route `retry_policy.per_try_timeout`                  | TrafficPolicy `retry.perTryTimeout`                     |
| route `retry_policy.retry_on` (+ retriable-status-codes) | TrafficPolicy `retry.retryOn` (+ `statusCodes`)      |
| route `retry_policy.retriable_status_codes`           | TrafficPolicy `retry.statusCodes`                       |
| ext_authz filter per destination, disabled by default, | GatewayExtension `egress-<name>-authz`, which the       |
| enabled on its route only                            | TrafficPolicy's `extAuth.extensionRef` names            |
| ext_authz `failure_mode_allow`                        | GatewayExtension `extAuth.failOpen`                     |
| ext_authz gRPC service -> cluster `authz`             | GatewayExtension `extAuth.grpcService.backendRef`       |
| per-route `check_settings.context_extensions`         | TrafficPolicy `extAuth.contextExtensions`               |
| access log, JSON, same fields                         | ListenerPolicy `accessLog[].fileSink.jsonFormat`        |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.manifests import destination as builders
from components.manifests.gateway import ACCESS_LOG_FORMAT
from components.settings.config import Destination, Team, duration_ms

EXT_AUTHZ = "envoy.filters.http.ext_authz"
_TYPES = "type.googleapis.com/envoy"
HCM_TYPE = f"{_TYPES}.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
FILE_LOG_TYPE = f"{_TYPES}.extensions.access_loggers.file.v3.FileAccessLog"
ROUTER_TYPE = f"{_TYPES}.extensions.filters.http.router.v3.Router"
EXT_AUTHZ_TYPE = f"{_TYPES}.extensions.filters.http.ext_authz.v3.ExtAuthz"
EXT_AUTHZ_ROUTE_TYPE = f"{_TYPES}.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
ROUTER = "envoy.filters.http.router"
AUTHZ_CLUSTER = "authz"


def _duration(value: str) -> str:
    """A kgateway duration (e.g. `1m30s`) as a protobuf JSON duration."""
    return f"{duration_ms(value) / 1000:g}s"


def _filter_name(dest: Destination) -> str:
    return f"{EXT_AUTHZ}/{dest.name}"


def ext_authz_filter(dest: Destination) -> dict[str, Any]:
    return {
        "name": _filter_name(dest),
        "disabled": True,  # enabled only on the routes whose TrafficPolicy references it
        "typed_config": {
            "@type": EXT_AUTHZ_TYPE,
            "transport_api_version": "V3",
            "failure_mode_allow": dest.fail_open,
            "grpc_service": {"envoy_grpc": {"cluster_name": AUTHZ_CLUSTER}, "timeout": "2s"},
        },
    }


def retry_policy(dest: Destination) -> dict[str, Any]:
    r = dest.retries
    retry_on = list(r.retry_on)
    if r.status_codes and "retriable-status-codes" not in retry_on:
        retry_on.append("retriable-status-codes")
    return {
        "retry_on": ",".join(retry_on),
        "num_retries": r.attempts,
        "per_try_timeout": _duration(r.per_try_timeout),
        "retriable_status_codes": list(r.status_codes),
    }


def virtual_host(team: Team, dest: Destination, with_authz: bool = True) -> dict[str, Any]:
    traffic = builders.traffic_policy(team, dest)["spec"]
    vhost: dict[str, Any] = {
        "name": dest.name,
        "domains": [dest.host, f"{dest.host}:*"],
        "routes": [
            {
                "match": {"prefix": "/"},
                "route": {
                    "cluster": f"dest-{dest.name}",
                    "timeout": _duration(dest.timeout),
                    "retry_policy": retry_policy(dest),
                },
            }
        ],
    }
    if with_authz:
        vhost["routes"][0]["typed_per_filter_config"] = {
            _filter_name(dest): {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                "config": {
                    "@type": EXT_AUTHZ_ROUTE_TYPE,
                    "check_settings": {"context_extensions": traffic["extAuth"]["contextExtensions"]},
                },
            }
        }
    return vhost


def _static_cluster(name: str, host: str, port: int, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def listener(
    name: str, port: int, team: Team, destinations: Sequence[Destination], access_log: str, with_authz: bool = True
) -> dict[str, Any]:
    """`with_authz=False` leaves out external authorization (the benchmark's gateway-only path)."""
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": name,
                            "access_log": [
                                {
                                    "name": "envoy.access_loggers.file",
                                    "typed_config": {
                                        "@type": FILE_LOG_TYPE,
                                        "path": access_log,
                                        "log_format": {"json_format": dict(ACCESS_LOG_FORMAT)},
                                    },
                                }
                            ],
                            "route_config": {
                                "name": name,
                                "virtual_hosts": [virtual_host(team, d, with_authz) for d in destinations],
                            },
                            "http_filters": [
                                *(ext_authz_filter(d) for d in destinations if with_authz),
                                {
                                    "name": ROUTER,
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                    },
                                },
                            ],
                        },
                    }
                ]
            }
        ],
    }


def bootstrap(
    team: Team,
    listeners: Mapping[str, tuple[int, Sequence[Destination], bool]],
    upstreams: Mapping[str, int],
    authz_port: int,
    admin_port: int,
    access_log: str,
) -> dict[str, Any]:
    """Envoy bootstrap: one listener per entry (name -> port, destinations, with authz), loopback only."""
    clusters = [_static_cluster(f"dest-{name}", "127.0.0.1", port) for name, port in upstreams.items()]
    clusters.append(_static_cluster(AUTHZ_CLUSTER, "127.0.0.1", authz_port, http2=True))
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [listener(n, p, team, ds, access_log, a) for n, (p, ds, a) in listeners.items()],
            "clusters": clusters,
        },
    }
