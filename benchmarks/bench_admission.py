"""Admission latency against the size of the approval registry, on a real control plane with Kyverno's
admission controller (out of cluster, the chart's identity) enforcing the platform's policies.

One platform of TEAMS teams (each with its namespace, identity and listener, as the platform stack lays
them out); for each registry size (approvals spread over the teams, one host each) the registry
ConfigMap is replaced and, once admission decides from it, a team (t0, its own issued identity) makes
server-side dry-run writes (`?dryRun=All`: admission runs, nothing is stored) of its own objects:
a ServiceEntry (the registry policy: the registry parsed, approvals filtered), a TrafficPolicy and an
HTTPRoute (the route policy: the registry plus the namespace's routes, policies and entries listed).
Prints p50/p99 per kind and size, the registry's size in bytes (a ConfigMap holds at most 1 MiB), and
any write that is not admitted (where it breaks).

Usage: source .tools.env && python benchmarks/bench_admission.py [APPROVALS ...]   (default 10 1000 5000)
       BENCH_TEAMS=500 BENCH_WRITES=200 change the platform's teams and the writes per kind and size.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.manifests.admission import registry_configmap  # noqa: E402
from components.manifests.stack import stack_objects  # noqa: E402
from components.settings import config, names  # noqa: E402
from components.settings.config import Approval, StackConfig  # noqa: E402
from devenv.kubeapi import KubeApi  # noqa: E402
from devenv.kyverno_admission import apply  # noqa: E402
from devenv.scale import platform_config  # noqa: E402
from tests.platform_cluster import platform_cluster, team_api  # noqa: E402

TEAMS = int(os.environ.get("BENCH_TEAMS", "500"))
WRITES = int(os.environ.get("BENCH_WRITES", "200"))
CRDS = Path(os.environ.get("EGRESS_CRDS_DIR", ROOT.parent / "shared" / "crds"))
CONFIGMAP_LIMIT = 1024 * 1024  # bytes of a ConfigMap's data (the API server refuses more)


def approvals(count: int, teams: int) -> list[Approval]:
    """`count` approvals, one host each, spread over the teams (t0 holds approval 0 and every teams-th)."""
    return [
        Approval(
            host=f"api{i}.example.com",
            ports=[443],
            teams=[f"t{i % teams}"],
            ticket=f"SEC-{i}",
            approved_by="security@corp.example",
            expires=dt.date(2099, 12, 31),
        )
        for i in range(count)
    ]


def platform(teams: int) -> StackConfig:
    return config.parse(platform_config(teams))


def team_objects(plat: StackConfig) -> dict[str, dict[str, Any]]:
    """Team t0's own objects for its destination api0.example.com, by kind (as its stack makes them)."""
    cfg = config.parse(
        {
            "platformStack": "organization/egress/bench-platform",
            "team": {"name": "t0", "namespace": "team-t0"},
            "destinations": [
                {"name": "d0", "host": "api0.example.com", "port": 443, "authz": {"requireHeaders": {"x-c": ["b"]}}}
            ],
        }
    )
    return {o["kind"]: o for o in stack_objects(cfg, dt.date.today(), plat.approvals).all()}


def renamed(obj: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["name"] = name
    return out


def dry_run(api: KubeApi, obj: dict[str, Any]) -> tuple[int, str, float]:
    path = api.item_path(obj).rsplit("/", 1)[0] + "?dryRun=All"
    start = time.perf_counter()
    status, body = api.request("POST", path, obj)
    took = time.perf_counter() - start
    return status, (body or {}).get("message", "") if isinstance(body, dict) else str(body), took


def wait_for_registry(api: KubeApi, entry: dict[str, Any], timeout: float = 120) -> None:
    """Until admission admits `entry` (a host only the new registry approves)."""
    deadline = time.monotonic() + timeout
    while True:
        status, message, _ = dry_run(api, entry)
        if status == 201:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"admission never admitted the probe: {status} {message}")
        time.sleep(0.5)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(sizes: list[int]) -> None:
    plat = platform(TEAMS)
    own = team_objects(plat)
    print(f"platform: {TEAMS} teams; {WRITES} server-side dry-run writes per kind and size, as team t0")
    print(f"{'approvals':>9} {'registry':>10}  " + "  ".join(f"{k + ' p50/p99 ms':>26}" for k in KINDS))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        with platform_cluster(CRDS, Path(tmp), plat, identities=["t0"]) as cluster:
            print(f"(platform of {TEAMS} teams laid out in {time.monotonic() - started:.0f} s)")
            team = team_api(cluster.plane, cluster.kubeconfigs["t0"])
            path = f"api/v1/namespaces/{names.REGISTRY_NAMESPACE}/configmaps/{names.REGISTRY_CONFIGMAP}"
            for n in sizes:
                probe = f"probe{n}.example.com"
                registry = registry_configmap(
                    plat.teams,
                    [
                        *approvals(n, TEAMS),
                        Approval(
                            host=probe,
                            ports=[443],
                            teams=["t0"],
                            ticket="probe",
                            approved_by="security@corp.example",
                            expires=dt.date(2099, 12, 31),
                        ),
                    ],
                )
                size = len(json.dumps(registry["data"]))
                if size > CONFIGMAP_LIMIT:
                    print(f"{n:>9} {size:>10}  the registry exceeds a ConfigMap's 1 MiB: breaks here")
                    continue
                apply(cluster.api, path, registry)
                entry = renamed(own["ServiceEntry"], f"probe-{n}")
                entry["spec"]["hosts"] = [probe]
                wait_for_registry(team, entry)
                cells = [measure(team, cluster.api, own, kind, n) for kind in KINDS]
                print(f"{n:>9} {size:>10}  " + "  ".join(f"{c:>26}" for c in cells))


KINDS = ("ServiceEntry", "TrafficPolicy", "HTTPRoute")


def measure(team: KubeApi, admin: KubeApi, own: dict[str, dict[str, Any]], kind: str, n: int) -> str:
    """p50/p99 of WRITES dry-run creates of `kind`; a route's ServiceEntry, extension and policy are
    created first (admission admits a route only once they exist), and removed after."""
    made: list[dict[str, Any]] = []
    if kind == "HTTPRoute":
        for k in ("ServiceEntry", "GatewayExtension", "TrafficPolicy"):
            status, body = team.request("POST", team.item_path(own[k]).rsplit("/", 1)[0], own[k])
            if status not in (201, 409):
                return f"setup {k}: {status} {(body or {}).get('message', '')[:60]}"
            made.append(own[k])
    times: list[float] = []
    refused: list[str] = []
    try:
        for i in range(WRITES):
            obj = own[kind] if kind == "HTTPRoute" else renamed(own[kind], f"bench-{n}-{i}")
            if kind == "TrafficPolicy":
                obj["spec"]["targetRefs"][0]["name"] = obj["metadata"]["name"]
            status, message, took = dry_run(team, obj)
            if status == 201:
                times.append(took)
            else:
                refused.append(f"{status} {message[:80]}")
    finally:
        for obj in reversed(made):
            admin.request("DELETE", admin.item_path(obj))
    if refused:
        return f"REFUSED {len(refused)}: {refused[0]}"
    return f"{pct(times, 0.5) * 1000:.0f} / {pct(times, 0.99) * 1000:.0f}"


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 1000, 5000])
