"""The only place that stands in for kgateway: the stack's objects -> Envoy configuration, as
kgateway v2.4.x translates them.

Every value is read from the object field it mirrors (the dicts `stack_objects(...).all()` returns,
the same the program applies), so the sandbox cannot drift from what the stack creates. Nothing is
tuned for the scenarios. The sandbox substitutes only addresses: a loopback port for each team
listener's port, the ServiceEntry endpoints (a local stand-in) and the authz Service.

Each rule cites what it follows in kgateway's v2.4.x release branch (read at commit 6c33df28 of the
branch as a fork carries it; the v2.4.3 tag itself is not in any snapshot here). `TP` is
pkg/kgateway/translator/gateway/testutils (translator golden outputs), `TPP` is
pkg/kgateway/extensions2/plugins/trafficpolicy.

Each rule: Envoy (this module) <- the object field it mirrors [what in kgateway it follows].
- One plain-HTTP listener per listener port, no TLS, no PROXY protocol, its own RDS route
  configuration <- ListenerSet (or Gateway) `spec.listeners[]` port, protocol HTTP
  [translator/listener/gateway_listener_translator.go appendHttpListener, getListenerPortNumber:
  no port translation; TP/outputs/listener-sets/basic.yaml: listener~8080 and listener~9090, each
  with routeConfigName listener~<port>].
- Routes attach only where the listener's `allowedRoutes` admits their namespace <- HTTPRoute
  `parentRefs` (kind, name, sectionName), the listener's `allowedRoutes` [query/route.go
  processRoute, allowedRoutes; query/query.go parentRefMatchListener].
- A virtual host per route, `domains: [host]`, `ignore_port_in_host_matching` <- HTTPRoute
  `spec.hostnames` [TP/outputs/listener-sets/basic.yaml: ignorePortInHostMatching: true].
- Route `/` prefix -> the cluster of the ServiceEntry port, its endpoint the stand-in <- HTTPRoute
  `rules[].backendRefs[]` (ServiceEntry, port), ServiceEntry `spec.endpoints` (substituted).
- Route `timeout` and `retry_policy` (num_retries, per_try_timeout, retry_on,
  retriable_status_codes) <- TrafficPolicy `timeouts.request`, `retry.attempts`, `perTryTimeout`,
  `retryOn`, `statusCodes` [TPP timeouts and retry translation].
- An ext_authz filter `ext_auth/<ns>/<name>` per GatewayExtension, disabled, enabled on the routes
  whose policy names it <- TrafficPolicy `extAuth.extensionRef` [TPP/extauth_policy.go
  extAuthFilterName, handleExtAuth; TP/outputs/traffic-policy/extauth-grpc-full-config.yaml].
- ext_authz `failure_mode_allow`, gRPC `timeout`, `status_on_error`; no peer certificate and no
  metadata context in the Check <- GatewayExtension `extAuth.failOpen`, `grpcService.requestTimeout`,
  `extAuth.statusOnError` [TPP/gateway_extension.go TranslateGatewayExtensionBuilder,
  ResolveExtGrpcService].
- Per-route `check_settings.context_extensions` <- TrafficPolicy `extAuth.contextExtensions`
  [TPP/extauth_policy.go buildExtAuthPerRouteFilterConfig].
- Route `request_headers_to_add`, overwriting <- TrafficPolicy `headerModifiers.request.set` (Secret).
- The route's TrafficPolicy is the one its rule names in an ExtensionRef filter, else the one targeting
  it (the same policy, both ways, in the stacks' objects) <- HTTPRoute `rules[].filters[]`
  `ExtensionRef` to a TrafficPolicy of its namespace [krtcollections/policy.go resolveExtension;
  irtranslator/route.go runRoutePlugins: ExtensionRef policies first, then targetRef ones].
- A rule whose ExtensionRef names a TrafficPolicy that does not exist is answered `direct_response`
  500, with no per-filter config and no header changes, never forwarded <- the missing policy
  [resolveExtension ErrPolicyNotFound; irtranslator/route.go finalizeRoute, under the default
  validation level STANDARD (no level turns it off); TP/outputs/route-replacement/standard/policy/
  policy-extension-ref-invalid-out.yaml].
- The `ratelimit/local` filter, a token bucket per route, after ext_authz <- TrafficPolicy
  `rateLimit.local.tokenBucket` [TPP/local_rate_limit_plugin.go toLocalRateLimitFilterConfig; the
  order: pluginsdk/filters/stages.go, the AuthN stage before the RateLimit stage].
- The JSON access log with the same fields on every listener <- ListenerPolicy
  `accessLog[].fileSink.jsonFormat`, on the Gateway [plugins/listenerpolicy/
  access_logging_converter.go: applied per port, `default` where no `perPort` entry].

The sandbox runs variants of the team's listener side by side (fail open, no authorization, the
negative control), so its listeners are named by role rather than `listener~<port>`. Routes are
served over RDS from a file (`route_config_file`): rewriting that file is how the sandbox plays
kgateway pushing a changed route to the running gateway.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.manifests.kinds import Obj
from components.settings.config import duration_ms

EXT_AUTH_PREFIX = "ext_auth"  # kgateway's filter names: ext_auth/<namespace>/<name>
LOCAL_RATE_LIMIT = "ratelimit/local"  # kgateway's one local rate limit filter
_TYPES = "type.googleapis.com/envoy"
HCM_TYPE = f"{_TYPES}.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
FILE_LOG_TYPE = f"{_TYPES}.extensions.access_loggers.file.v3.FileAccessLog"
ROUTER_TYPE = f"{_TYPES}.extensions.filters.http.router.v3.Router"
EXT_AUTHZ_TYPE = f"{_TYPES}.extensions.filters.http.ext_authz.v3.ExtAuthz"
EXT_AUTHZ_ROUTE_TYPE = f"{_TYPES}.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
FILTER_CONFIG_TYPE = f"{_TYPES}.config.route.v3.FilterConfig"
ROUTE_CONFIG_TYPE = f"{_TYPES}.config.route.v3.RouteConfiguration"
HTTP_OPTIONS_TYPE = f"{_TYPES}.extensions.upstreams.http.v3.HttpProtocolOptions"
LOCAL_RATE_LIMIT_TYPE = f"{_TYPES}.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

Key = tuple[str, str]  # (namespace, name)


def _duration(value: str) -> str:
    """A kgateway duration (e.g. `1m30s`) as a protobuf JSON duration."""
    return f"{duration_ms(value) / 1000:g}s"


def _key(obj: Obj) -> Key:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _of(objs: Iterable[Obj], kind: str) -> dict[Key, Obj]:
    return {_key(o): o for o in objs if o["kind"] == kind}


@dataclass(frozen=True)
class Route:
    """One HTTPRoute with what attaches to it, as kgateway would resolve it."""

    route: Obj
    service_entry: Obj
    port: int
    traffic_policy: Obj | None
    extension: Obj | None
    # Request headers the policy sets (name, value), values of Secret references resolved.
    set_headers: tuple[tuple[str, str], ...] = ()
    # Why kgateway replaces the rule with a direct 500 (a filter names a policy that does not exist), or "".
    replaced: str = ""

    @property
    def key(self) -> Key:
        return _key(self.route)

    @property
    def hosts(self) -> list[str]:
        return list(self.route["spec"]["hostnames"])


def _listener_spec(parent: Obj, section: str) -> Obj | None:
    return next((li for li in parent["spec"]["listeners"] if li["name"] == section), None)


def admits(parent: Obj, section: str, route_namespace: str) -> bool:
    """Whether the listener's `allowedRoutes.namespaces` admits routes of this namespace (Gateway API:
    Same, All, or a Selector). The sandbox knows each namespace's `kubernetes.io/metadata.name`
    label only (the one the API server sets): a selector on any other label matches nothing here.
    kgateway decides this in pkg/kgateway/query/route.go (the route's parents against each
    listener's allowedRoutes; a parent refused is reported NotAllowedByListeners)."""
    spec = _listener_spec(parent, section)
    if spec is None:  # no such listener: nothing attaches
        return False
    allowed = spec.get("allowedRoutes", {}).get("namespaces", {"from": "Same"})
    where = allowed.get("from", "Same")
    if where == "All":
        return True
    if where == "Same":
        return route_namespace == _key(parent)[0]
    selector = allowed.get("selector", {})
    labels = {"kubernetes.io/metadata.name": route_namespace}
    return not selector.get("matchExpressions") and all(
        labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()
    )


def attached(route: Obj, parent: Obj, section: str) -> bool:
    """Whether the HTTPRoute names this listener of the Gateway or ListenerSet among its parents, and
    the listener admits the route's namespace."""
    ns = _key(route)[0]
    return admits(parent, section, ns) and any(
        p.get("kind", "Gateway") == parent["kind"]
        and (p.get("namespace", ns), p["name"]) == _key(parent)
        and p.get("sectionName", section) == section
        for p in route["spec"].get("parentRefs", [])
    )


def resolve(objs: Iterable[Obj], parent: Obj, section: str) -> list[Route]:
    """Each HTTPRoute attached to the listener, with its ServiceEntry backend, the TrafficPolicy
    targeting it and that policy's GatewayExtension (all found by the references the objects hold)."""
    objs = list(objs)
    entries, policies, extensions = (_of(objs, k) for k in ("ServiceEntry", "TrafficPolicy", "GatewayExtension"))
    out = []
    for key, route in _of(objs, "HTTPRoute").items():
        if not attached(route, parent, section):
            continue
        ns = key[0]
        (rule,) = route["spec"]["rules"]
        (backend,) = rule["backendRefs"]
        assert backend["kind"] == "ServiceEntry", backend
        entry = entries[(backend.get("namespace", ns), backend["name"])]
        named = [
            f["extensionRef"]["name"]
            for f in rule.get("filters", [])
            if f["type"] == "ExtensionRef" and f["extensionRef"]["kind"] == "TrafficPolicy"
        ]
        missing = [n for n in named if (ns, n) not in policies]
        if missing:
            out.append(
                Route(route, entry, int(backend["port"]), None, None, (), f"TrafficPolicy {missing[0]} not found")
            )
            continue
        policy = (
            policies[(ns, named[0])]
            if named
            else next(
                (
                    p
                    for (pns, _), p in policies.items()
                    if pns == ns
                    and any(t["kind"] == "HTTPRoute" and t["name"] == key[1] for t in p["spec"].get("targetRefs", []))
                ),
                None,
            )
        )
        extension = None
        if policy is not None and "extAuth" in policy["spec"]:
            ref = policy["spec"]["extAuth"]["extensionRef"]
            extension = extensions[(ref.get("namespace", ns), ref["name"])]
        headers = set_headers(policy, _of(objs, "Secret")) if policy is not None else ()
        out.append(Route(route, entry, int(backend["port"]), policy, extension, headers))
    return out


def set_headers(policy: Obj, secrets: Mapping[Key, Obj]) -> tuple[tuple[str, str], ...]:
    """`headerModifiers.request.set` of a TrafficPolicy, each value read from its Secret where it names
    one (kgateway reads the Secret the same way; across namespaces under a ReferenceGrant)."""
    out = []
    ns = _key(policy)[0]
    for h in policy["spec"].get("headerModifiers", {}).get("request", {}).get("set", []):
        if "secretRef" in h:
            ref = h["secretRef"]
            secret = secrets[(ref.get("namespace", ns), ref["name"])]
            out.append((h["name"], secret["stringData"][ref.get("key", h["name"])]))
        else:
            out.append((h["name"], h["value"]))
    return tuple(out)


# --- names of Envoy resources --------------------------------------------------------------------
def cluster_name(entry: Obj, port: int) -> str:
    ns, name = _key(entry)
    return f"serviceentry_{ns}_{name}_{port}"


def filter_name(extension: Obj) -> str:
    ns, name = _key(extension)
    return f"{EXT_AUTH_PREFIX}/{ns}/{name}"


def grpc_cluster_name(extension: Obj) -> str:
    ref = extension["spec"]["extAuth"]["grpcService"]["backendRef"]
    return f"service_{ref.get('namespace', _key(extension)[0])}_{ref['name']}_{ref['port']}"


# --- routes (RDS) --------------------------------------------------------------------------------
def retry_policy(traffic_policy: Obj) -> dict[str, Any]:
    r = traffic_policy["spec"]["retry"]
    retry_on = list(r.get("retryOn", []))
    codes = list(r.get("statusCodes", []))
    if codes and "retriable-status-codes" not in retry_on:
        retry_on.append("retriable-status-codes")
    out: dict[str, Any] = {"retry_on": ",".join(retry_on), "num_retries": r["attempts"]}
    if "perTryTimeout" in r:
        out["per_try_timeout"] = _duration(r["perTryTimeout"])
    if codes:
        out["retriable_status_codes"] = codes
    return out


def rate_limit_per_route(bucket: Obj) -> dict[str, Any]:
    """TrafficPolicy `rateLimit.local.tokenBucket` as the route's local rate limit, always enforced."""
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "egress_rate_limit"}
    return {
        "@type": LOCAL_RATE_LIMIT_TYPE,
        "stat_prefix": "egress_rate_limit",
        "token_bucket": {
            "max_tokens": int(bucket["maxTokens"]),
            "tokens_per_fill": int(bucket.get("tokensPerFill", 1)),
            "fill_interval": _duration(bucket["fillInterval"]),
        },
        "filter_enabled": always,
        "filter_enforced": always,
    }


# kgateway's body for a replaced rule (irtranslator/route.go finalizeRoute).
REPLACED_BODY = "invalid route configuration detected and replaced with a direct response."


def virtual_host(r: Route) -> dict[str, Any]:
    ns, name = r.key
    if r.replaced:
        replaced = {
            "match": {"prefix": "/"},
            "direct_response": {"status": 500, "body": {"inline_string": REPLACED_BODY}},
        }
        return {"name": f"{ns}/{name}", "domains": list(r.hosts), "routes": [replaced]}
    action: dict[str, Any] = {"cluster": cluster_name(r.service_entry, r.port)}
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": action}
    tp = r.traffic_policy
    if r.set_headers:
        # Applied as the request is forwarded: after authorization, which never sees them.
        route["request_headers_to_add"] = [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} for k, v in r.set_headers
        ]
    if tp is not None and "rateLimit" in tp["spec"]:
        bucket = tp["spec"]["rateLimit"]["local"]["tokenBucket"]
        route.setdefault("typed_per_filter_config", {})[LOCAL_RATE_LIMIT] = rate_limit_per_route(bucket)
    if tp is not None:
        if "timeouts" in tp["spec"]:
            action["timeout"] = _duration(tp["spec"]["timeouts"]["request"])
        if "retry" in tp["spec"]:
            action["retry_policy"] = retry_policy(tp)
        if r.extension is not None:
            route.setdefault("typed_per_filter_config", {}).update(
                {
                    filter_name(r.extension): {
                        "@type": FILTER_CONFIG_TYPE,
                        "config": {
                            "@type": EXT_AUTHZ_ROUTE_TYPE,
                            "check_settings": {
                                "context_extensions": dict(tp["spec"]["extAuth"].get("contextExtensions", {}))
                            },
                        },
                    }
                }
            )
    return {
        "name": f"{ns}/{name}",
        "domains": list(r.hosts),
        "routes": [route],
    }


def route_configuration(name: str, routes: Iterable[Route]) -> dict[str, Any]:
    return {"name": name, "ignore_port_in_host_matching": True, "virtual_hosts": [virtual_host(r) for r in routes]}


def write_route_configuration(path: Path, config: dict[str, Any], version: int) -> None:
    """Replace the RDS file atomically (Envoy reloads on a move into place)."""
    doc = {"version_info": str(version), "resources": [{"@type": ROUTE_CONFIG_TYPE, **config}]}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# --- listeners, clusters, bootstrap ------------------------------------------------------------------
# Where a GatewayExtension's gRPC service sets no `requestTimeout`, kgateway sets no timeout
# (TPP/gateway_extension.go ResolveExtGrpcService; only its HTTP service defaults to 2s), so Envoy's
# own default applies: 200 ms (ext_authz GrpcService.timeout). Ours always set one.
DEFAULT_AUTHZ_TIMEOUT = "200ms"


def ext_authz_filter(extension: Obj) -> dict[str, Any]:
    spec = extension["spec"]["extAuth"]
    timeout = spec["grpcService"].get("requestTimeout", DEFAULT_AUTHZ_TIMEOUT)
    config: dict[str, Any] = {
        "@type": EXT_AUTHZ_TYPE,
        "transport_api_version": "V3",
        "failure_mode_allow": bool(spec.get("failOpen", False)),
        "grpc_service": {"envoy_grpc": {"cluster_name": grpc_cluster_name(extension)}, "timeout": _duration(timeout)},
    }
    if "statusOnError" in spec:
        config["status_on_error"] = {"code": spec["statusOnError"]}
    return {
        "name": filter_name(extension),
        "disabled": True,  # enabled only on the routes whose TrafficPolicy references it
        "typed_config": config,
    }


def listener(
    name: str,
    port: int,
    extensions: Iterable[Obj],
    route_config_file: Path,
    access_log: str,
    access_log_format: Mapping[str, str],
) -> dict[str, Any]:
    """One plain-HTTP listener, as kgateway builds one per listener port: ztunnel has ended the
    mesh's mTLS before the gateway (no downstream TLS, no PROXY protocol, no client certificate)."""
    chain: dict[str, Any] = {
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
                                "log_format": {"json_format": dict(access_log_format)},
                            },
                        }
                    ],
                    "rds": {
                        "route_config_name": name,
                        "config_source": {
                            "path_config_source": {"path": str(route_config_file)},
                            "resource_api_version": "V3",
                        },
                    },
                    # kgateway's order (its filter stages): external authorization (AuthN stage), then the
                    # local rate limit (RateLimit stage): a request over its route's budget is answered
                    # 429 after authorization, before the upstream; a denied one spends no token.
                    "http_filters": [
                        *(ext_authz_filter(e) for e in extensions),
                        {
                            "name": LOCAL_RATE_LIMIT,
                            "typed_config": {"@type": LOCAL_RATE_LIMIT_TYPE, "stat_prefix": "http_local_rate_limiter"},
                        },
                        {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
                    ],
                },
            }
        ]
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [chain],
    }


def static_cluster(name: str, port: int, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                    ]
                }
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_OPTIONS_TYPE,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


# --- variants of the objects (the sandbox's extra listeners) -----------------------------------------
def with_fail_open(objs: Iterable[Obj]) -> list[Obj]:
    """The same objects with every GatewayExtension's `extAuth.failOpen: true`."""
    out = copy.deepcopy(list(objs))
    for o in out:
        if o["kind"] == "GatewayExtension":
            o["spec"]["extAuth"]["failOpen"] = True
    return out


def without_ext_auth(objs: Iterable[Obj]) -> list[Obj]:
    """The same objects without external authorization (the benchmark's gateway-only path)."""
    out = [copy.deepcopy(o) for o in objs if o["kind"] != "GatewayExtension"]
    for o in out:
        if o["kind"] == "TrafficPolicy":
            o["spec"].pop("extAuth", None)
    return out


@dataclass(frozen=True)
class Gateway:
    """One Envoy listener: a listener of the Gateway or of a ListenerSet attached to it (kgateway
    translates a ListenerSet's listeners as the Gateway's own), with the routes of one set of objects."""

    name: str  # the Envoy listener's (and its route configuration's) name
    port: int  # the loopback port standing in for the listener's port
    parent: Obj  # the Gateway or ListenerSet object
    listener: str  # its listener's name
    objects: list[Obj]

    def routes(self) -> list[Route]:
        return resolve(self.objects, self.parent, self.listener)

    def extensions(self) -> list[Obj]:
        seen: dict[str, Obj] = {}
        for r in self.routes():
            if r.extension is not None:
                seen.setdefault(filter_name(r.extension), r.extension)
        return list(seen.values())


def bootstrap(
    gateways: Iterable[Gateway],
    route_files: Mapping[str, Path],
    upstream_port: Callable[[Obj], int],
    service_port: Callable[[Obj], int],
    admin_port: int,
    access_log: str,
    access_log_format: Mapping[str, str],
) -> dict[str, Any]:
    """Envoy bootstrap: one listener per gateway, loopback only.

    `upstream_port(service_entry)` is the stand-in's port for a ServiceEntry's endpoints;
    `service_port(extension)` the loopback port of the Service a GatewayExtension's gRPC service names.
    """
    gateways = list(gateways)
    clusters: dict[str, dict[str, Any]] = {}
    for g in gateways:
        for r in g.routes():
            name = cluster_name(r.service_entry, r.port)
            clusters.setdefault(name, static_cluster(name, upstream_port(r.service_entry)))
        for e in g.extensions():
            name = grpc_cluster_name(e)
            clusters.setdefault(name, static_cluster(name, service_port(e), http2=True))
    return {
        "node": {"id": "egress-sandbox", "cluster": "egress-gateway"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                listener(g.name, g.port, g.extensions(), route_files[g.name], access_log, access_log_format)
                for g in gateways
            ],
            "clusters": list(clusters.values()),
        },
    }


def with_authz_service(objs: Iterable[Obj], service: str) -> list[Obj]:
    """The same objects with every GatewayExtension calling another authz Service (the negative
    control's server, which loads the previous, principal-based policy)."""
    out = copy.deepcopy(list(objs))
    for o in out:
        if o["kind"] == "GatewayExtension":
            o["spec"]["extAuth"]["grpcService"]["backendRef"]["name"] = service
    return out
