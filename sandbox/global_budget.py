"""A team's budget as a GLOBAL rate limit: the limiter's configuration and Envoy's, as kgateway builds it.

A local token bucket (`rateLimit.local`) is counted by each gateway replica on its own, so with R replicas a
team gets up to R times its budget. The platform instead runs one Envoy rate limit service
(github.com/envoyproxy/ratelimit, domain `egress`) backed by one Redis, and every replica asks it before
forwarding: one counter per team and destination, however many replicas there are.

Two pure halves, plain dicts in and out (no Pulumi, no I/O), so product objects can be fed to them:

- `limiter_config(budgets)`: the rate limit service's configuration file, made by the platform from the
  approval registry (each approval with a rate ceiling, for each team it approves): one descriptor
  `egress-route` = `<team namespace>/<host>` per (team, host) with `requests_per_unit` per `unit`.
  [envoyproxy/ratelimit at the pinned v1.4.1-0.20260122083618-3fb702589d36 (scripts/bootstrap.sh):
  README "Descriptor list definition" and "Rate limit definition" (domain, descriptors, key, value,
  rate_limit: unit, requests_per_unit); src/config/config_impl.go refuses the whole file on a "duplicate
  descriptor composite key", hence the ValueError on conflicting budgets here; src/limiter/cache_key.go
  GenerateCacheKey: the counter's Redis key is `<domain>_<key>_<value>_<window start>`, windows fixed and
  aligned to the epoch (src/utils/utilities.go UnitToDivider).]
- `rate_limit_filter(extension)` and `typed_per_filter_config(policy, extension)`: what kgateway v2.4.x
  makes of a GatewayExtension of type RateLimit and of a TrafficPolicy's `rateLimit.global`.

Each rule: Envoy (this module) <- the object field it mirrors [what in kgateway it follows]. `TPP` is
pkg/kgateway/extensions2/plugins/trafficpolicy, `TP` pkg/kgateway/translator/gateway/testutils; the
goldens were read on kgateway-dev/kgateway main (commit 157a7cbb), the translation code as of v2.4.x;
the defaults are the v2.4.3 CRD's (shared/crds/kgateway/v2.4.3/gateway.kgateway.dev_gatewayextensions.yaml).
- One HTTP filter per GatewayExtension, named `ratelimit/<ns>/<name>`, `disabled: true` (on only where a
  route's per-filter config names it) <- GatewayExtension metadata [TPP/global_rate_limit_plugin.go
  getRateLimitFilterName with the extension's ResourceName `<ns>/<name>` (gateway_extension.go
  TranslateGatewayExtensionBuilder); TP/outputs/traffic-policy/rate-limit-full-config.yaml:
  `ratelimit/default/default-ratelimit`, `disabled: true`].
- Its typed config envoy.extensions.filters.http.ratelimit.v3.RateLimit: `domain`, `failure_mode_deny`
  = not `failOpen` (CRD default true, so fail open unless the platform says otherwise), `timeout`
  (CRD default 100ms), `enable_x_ratelimit_headers` DRAFT_VERSION_03 for `xRateLimitHeaders:
  DraftVersion03` (default Off, left out), `rate_limit_service.grpc_service.envoy_grpc.cluster_name`
  (+ `authority`), the gRPC `timeout` only where `grpcService.requestTimeout` is set, `retry_policy` from
  `grpcService.retry`, `transport_api_version: V3` <- GatewayExtension `spec.rateLimit`
  [TPP/gateway_extension.go buildRateLimitFilter, convertXRL, ResolveExtGrpcService,
  buildExtSvcRetryPolicy; the golden's `failureModeDeny: true`, `timeout: 0.050s`,
  `grpcService.timeout: 0.200s`].
- The limiter's cluster: HTTP/2, named `kube_<ns>_<service>_<port>` <- `grpcService.backendRef`
  [golden: `kube_default_ratelimit_8081` with `http2ProtocolOptions`]. (sandbox/envoy_config.py names its
  authz cluster `service_...`; a cluster's name changes no behaviour.)
- Its place: after external authorization, with the local rate limit, before the router <- kgateway's
  filter stages [pluginsdk/filters/stages.go: AuthN before RateLimit; golden: the global filters, then
  `ratelimit/local`, then the router].
- Per route, `typed_per_filter_config["ratelimit/<ns>/<name>"]` = RateLimitPerRoute `{rate_limits:
  [{actions: [...]}]}`: ONE rate limit whose actions are the entries of every descriptor, in order
  (kgateway flattens the descriptors); an entry `Generic {key, value}` -> `generic_key {descriptor_key,
  descriptor_value}`, `Header h` -> `request_headers {header_name: h, descriptor_key: h}`,
  `RemoteAddress` -> `remote_address {}`, `Path` -> `request_headers {header_name: ":path",
  descriptor_key: "path"}` <- TrafficPolicy `rateLimit.global.descriptors`, its `extensionRef` (namespace
  defaulting to the policy's) [TPP/global_rate_limit_plugin.go constructGlobalRateLimit,
  createRateLimitActions (no descriptor is an error), handleGlobalRateLimit; an extension that is not of
  type RateLimit is refused (pluginutils.ErrInvalidExtensionType)].
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.manifests.kinds import Obj
from components.settings.config import duration_ms

DOMAIN = "egress"  # the platform's one domain in the rate limit service
DESCRIPTOR_KEY = "egress-route"  # value: <team namespace>/<host>
FILTER_PREFIX = "ratelimit"  # kgateway's rateLimitFilterNamePrefix
DEFAULT_TIMEOUT = "100ms"  # GatewayExtension spec.rateLimit.timeout, CRD default
DEFAULT_FAIL_OPEN = True  # GatewayExtension spec.rateLimit.failOpen, CRD default
# The units the rate limit service accepts (api/ratelimit RateLimitResponse.RateLimit.Unit, lowercased
# as its YAML reads them).
UNITS = ("second", "minute", "hour", "day", "week", "month", "year")
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
UNIT_SECONDS |= {"month": 30 * 86400, "year": 365 * 86400}  # src/utils/utilities.go UnitToDivider

_TYPES = "type.googleapis.com/envoy"
RATE_LIMIT_TYPE = f"{_TYPES}.extensions.filters.http.ratelimit.v3.RateLimit"
RATE_LIMIT_ROUTE_TYPE = f"{_TYPES}.extensions.filters.http.ratelimit.v3.RateLimitPerRoute"


@dataclass(frozen=True)
class Budget:
    """One team's ceiling on one destination: `requests` per `unit`, counted across every replica."""

    namespace: str  # the team's namespace
    host: str
    requests: int
    unit: str  # one of UNITS

    @property
    def descriptor_value(self) -> str:
        return descriptor_value(self.namespace, self.host)


def descriptor_value(namespace: str, host: str) -> str:
    """The `egress-route` value of a team's route to a host: the same string in the team's TrafficPolicy
    and in the platform's limiter configuration, or the two never meet."""
    return f"{namespace}/{host}"


def window_seconds(unit: str) -> int:
    """Length of the service's counting window: fixed, aligned to the Unix epoch."""
    return UNIT_SECONDS[unit]


# --- the rate limit service ----------------------------------------------------------------------------


def limiter_config(budgets: Iterable[Budget | tuple[str, str, int, str]], domain: str = DOMAIN) -> dict[str, Any]:
    """The rate limit service's configuration for `domain`: one `egress-route` descriptor per (namespace,
    host), sorted, each with its `rate_limit`. A pair given twice with the same budget is kept once; with
    different budgets it is an error (the service would refuse the whole file, and choosing one here would
    hide a disagreement in the registry)."""
    chosen: dict[str, Budget] = {}
    for item in budgets:
        b = item if isinstance(item, Budget) else Budget(*item)
        if not b.namespace or not b.host:
            raise ValueError(f"a budget needs a namespace and a host: {b}")
        if isinstance(b.requests, bool) or not isinstance(b.requests, int) or b.requests < 1:
            raise ValueError(f"{b.descriptor_value}: requests must be a positive integer, not {b.requests!r}")
        if b.unit not in UNITS:
            raise ValueError(f"{b.descriptor_value}: unit must be one of {', '.join(UNITS)}, not {b.unit!r}")
        seen = chosen.setdefault(b.descriptor_value, b)
        if (seen.requests, seen.unit) != (b.requests, b.unit):
            raise ValueError(
                f"{b.descriptor_value}: two budgets, {seen.requests}/{seen.unit} and {b.requests}/{b.unit}"
            )
    return {
        "domain": domain,
        "descriptors": [
            {
                "key": DESCRIPTOR_KEY,
                "value": value,
                "rate_limit": {"unit": b.unit, "requests_per_unit": b.requests},
            }
            for value, b in sorted(chosen.items())
        ],
    }


# --- Envoy, as kgateway translates the objects -----------------------------------------------------------


def _duration(value: str) -> str:
    """A kgateway duration (`100ms`, `1m30s`) as a protobuf JSON duration."""
    return f"{duration_ms(value) / 1000:g}s"


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _provider(extension: Obj) -> Obj:
    spec = extension["spec"].get("rateLimit")
    if spec is None:
        ns, name = _key(extension)
        raise ValueError(f"GatewayExtension {ns}/{name} is not of type RateLimit")
    return spec  # type: ignore[no-any-return]


def filter_name(extension: Obj) -> str:
    ns, name = _key(extension)
    return f"{FILTER_PREFIX}/{ns}/{name}"


def cluster_name(extension: Obj) -> str:
    ref = _provider(extension)["grpcService"]["backendRef"]
    return f"kube_{ref.get('namespace', _key(extension)[0])}_{ref['name']}_{ref['port']}"


def _retry_policy(retry: Obj) -> dict[str, Any]:
    out: dict[str, Any] = {"num_retries": int(retry.get("attempts", 1))}
    if "backoff" in retry:
        out["retry_back_off"] = {"base_interval": _duration(retry["backoff"]["baseInterval"])}
        if "maxInterval" in retry["backoff"]:
            out["retry_back_off"]["max_interval"] = _duration(retry["backoff"]["maxInterval"])
    return out


def rate_limit_filter(extension: Obj) -> dict[str, Any]:
    """The listener's HTTP filter for a GatewayExtension of type RateLimit (off until a route enables it)."""
    spec = _provider(extension)
    grpc_spec = spec["grpcService"]
    envoy_grpc: dict[str, Any] = {"cluster_name": cluster_name(extension)}
    if "authority" in grpc_spec:
        envoy_grpc["authority"] = grpc_spec["authority"]
    grpc_service: dict[str, Any] = {"envoy_grpc": envoy_grpc}
    if "retry" in grpc_spec:
        grpc_service["retry_policy"] = _retry_policy(grpc_spec["retry"])
    if "requestTimeout" in grpc_spec:
        grpc_service["timeout"] = _duration(grpc_spec["requestTimeout"])
    config: dict[str, Any] = {
        "@type": RATE_LIMIT_TYPE,
        "domain": spec.get("domain", ""),
        "failure_mode_deny": not bool(spec.get("failOpen", DEFAULT_FAIL_OPEN)),
        "timeout": _duration(spec.get("timeout", DEFAULT_TIMEOUT)),
        "rate_limit_service": {"grpc_service": grpc_service, "transport_api_version": "V3"},
    }
    if spec.get("xRateLimitHeaders", "Off") == "DraftVersion03":
        config["enable_x_ratelimit_headers"] = "DRAFT_VERSION_03"
    return {"name": filter_name(extension), "disabled": True, "typed_config": config}


def _action(entry: Obj) -> dict[str, Any]:
    kind = entry["type"]
    if kind == "Generic":
        g = entry["generic"]
        return {"generic_key": {"descriptor_key": g["key"], "descriptor_value": g["value"]}}
    if kind == "Header":
        return {"request_headers": {"header_name": entry["header"], "descriptor_key": entry["header"]}}
    if kind == "RemoteAddress":
        return {"remote_address": {}}
    if kind == "Path":
        return {"request_headers": {"header_name": ":path", "descriptor_key": "path"}}
    raise ValueError(f"unsupported rate limit descriptor entry type {kind!r}")


def rate_limit_actions(descriptors: Iterable[Obj]) -> list[dict[str, Any]]:
    """`rateLimit.global.descriptors` as Envoy actions: the entries of all descriptors, in order, in one list."""
    actions = [_action(entry) for d in descriptors for entry in d["entries"]]
    if not actions:
        raise ValueError("at least one descriptor is required for global rate limiting")
    return actions


def extension_ref(policy: Obj) -> tuple[str, str]:
    """(namespace, name) of the GatewayExtension a TrafficPolicy's global rate limit names."""
    ref = policy["spec"]["rateLimit"]["global"]["extensionRef"]
    return ref.get("namespace", _key(policy)[0]), ref["name"]


def typed_per_filter_config(policy: Obj, extension: Obj) -> dict[str, Any]:
    """The route's per-filter config for a TrafficPolicy with `rateLimit.global`: enables the extension's
    filter on the route and says which descriptor to send. `extension` must be the one the policy names."""
    if extension_ref(policy) != _key(extension):
        raise ValueError(
            f"the policy names GatewayExtension {'/'.join(extension_ref(policy))}, not {'/'.join(_key(extension))}"
        )
    _provider(extension)
    actions = rate_limit_actions(policy["spec"]["rateLimit"]["global"]["descriptors"])
    return {filter_name(extension): {"@type": RATE_LIMIT_ROUTE_TYPE, "rate_limits": [{"actions": actions}]}}


def with_rate_limit_filters(http_filters: Iterable[Mapping[str, Any]], extensions: Iterable[Obj]) -> list[Any]:
    """An HCM's `http_filters` with one rate limit filter per extension placed in kgateway's RateLimit
    stage: before the local rate limit (`ratelimit/local`) where there is one, else before the router."""
    out = [copy.deepcopy(dict(f)) for f in http_filters]
    names = [f["name"] for f in out]
    anchor = "ratelimit/local" if "ratelimit/local" in names else "envoy.filters.http.router"
    at = names.index(anchor)
    return out[:at] + [rate_limit_filter(e) for e in extensions] + out[at:]
