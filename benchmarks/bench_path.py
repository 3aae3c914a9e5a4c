"""Latency the egress path adds over calling the stand-in directly, with few and with many destinations.

Starts the sandbox (the real Envoy from the stack's objects, the real authz server as the chart
starts it) on loopback, with the stack's destinations padded to N (copies of its first destination
under other names and hosts, each with its own objects, as a platform with many teams would have).
Paths, measured with the same Python client on one keep-alive connection each:
  direct          the stand-in itself (plain HTTP)
  gateway         Envoy without external authorization (the team's plain-HTTP listener, same routes)
  gateway+authz   Envoy with the ext_authz call to the authz server (the real path)
p50/p99 at a fixed request rate and requests/s at saturation, as ratios to direct and to gateway.
The authorization cost (gateway+authz minus gateway) should not grow with N: one policy decides
every destination from the route's context.

Usage: python benchmarks/bench_path.py [STACK_FILE] [--destinations 10,1000] [--rate 200] [--seconds 5]
       [--workers 8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.settings.config import Approval, Destination, StackConfig, TeamEntry
from components.settings.stackfile import load_stack
from sandbox.harness import NO_AUTHZ, OWN, Sandbox, allowed_headers, platform_of

Connect = Callable[[], http.client.HTTPConnection]


def padded(cfg: StackConfig, n: int) -> StackConfig:
    """The stack with n destinations: its own, then copies of its first under other names and hosts."""
    first = cfg.destinations[0]
    extra = [
        Destination.model_validate(
            {
                **first.model_dump(by_alias=True),
                "name": f"bench-{i}",
                "host": f"bench-{i}.bench.example",
                "addresses": ["192.0.2.10"],
            }
        )
        for i in range(max(0, n - len(cfg.destinations)))
    ]
    return cfg.model_copy(update={"destinations": [*cfg.destinations, *extra][:n]})


def fixed_rate(connect: Connect, host: str, headers: dict[str, str], rate: int, seconds: float) -> list[float]:
    """Latencies (ms) of requests sent at `rate`/s on one keep-alive connection."""
    conn, out = connect(), []
    interval, start = 1.0 / rate, time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        conn.request("GET", "/", headers={"Host": host, **headers})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        out.append((time.perf_counter() - t) * 1000)
    conn.close()
    return out


def saturation(connect: Connect, host: str, headers: dict[str, str], workers: int, seconds: float) -> float:
    counts = [0] * workers
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        conn = connect()
        while time.perf_counter() < stop:
            conn.request("GET", "/", headers={"Host": host, **headers})
            conn.getresponse().read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


@dataclass
class Row:
    p50: float
    p99: float
    rps: float


def measure(
    cfg: StackConfig, registry: Sequence[Approval], teams: list[TeamEntry], authz: str, a: argparse.Namespace
) -> dict[str, Row]:
    dest = cfg.destinations[0]
    with tempfile.TemporaryDirectory(prefix="egress-bench-") as tmp:
        box = Sandbox(cfg, Path(tmp), authz, registry, teams, shared_upstream=True)
        try:
            started = time.perf_counter()
            box.start()
            up = time.perf_counter() - started
            print(f"  {len(cfg.destinations)} destinations: sandbox up in {up:.1f}s", flush=True)

            def plain(listener: str) -> Connect:  # ztunnel delivers plain TCP to the team's listener
                port = box.ports[listener]
                return lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10)

            direct_port = box.stand_ins[dest.name].port
            paths: dict[str, tuple[Connect, dict[str, str]]] = {
                "direct": (lambda: http.client.HTTPConnection("127.0.0.1", direct_port, timeout=10), {}),
                "gateway": (plain(NO_AUTHZ), {}),
                "gateway+authz": (plain(OWN), allowed_headers(dest)),
            }
            rows = {}
            for name, (connect, headers) in paths.items():
                fixed_rate(connect, dest.host, headers, a.rate, 1)  # warm-up
                lat = fixed_rate(connect, dest.host, headers, a.rate, a.seconds)
                rps = saturation(connect, dest.host, headers, a.workers, a.seconds)
                rows[name] = Row(pct(lat, 50), pct(lat, 99), rps)
        finally:
            box.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("stack", nargs="?", default="Pulumi.dev.yaml")
    ap.add_argument("--destinations", default="10,1000", help="comma-separated destination counts")
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--workers", type=int, default=8)
    a = ap.parse_args()
    authz = os.environ.get("KYVERNO_AUTHZ_BIN") or None
    if not authz:
        print("needs the authz server binary (KYVERNO_AUTHZ_BIN; scripts/build/kyverno-authz.sh)", file=sys.stderr)
        return 2
    stack = Path(a.stack)
    cfg = load_stack(stack)
    platform = platform_of(cfg, stack)
    registry, teams = platform.approvals_in_force, list(platform.teams)
    counts = [int(n) for n in a.destinations.split(",")]
    print(f"{a.rate} req/s for {a.seconds:g}s, saturation with {a.workers} workers; stack {a.stack}")
    results = {n: measure(padded(cfg, n), registry, teams, authz, a) for n in counts}
    head = f"{'destinations':>12} {'path':<14} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>6}"
    print(f"{head}   {'p50/direct':>10} {'p99/direct':>10} {'p50/gw':>7} {'p99/gw':>7} {'req/s/direct':>12}")
    for n, rows in results.items():
        d, g = rows["direct"], rows["gateway"]
        for name, r in rows.items():
            print(
                f"{n:>12} {name:<14} {r.p50:>7.2f} {r.p99:>7.2f} {r.rps:>6.0f}   {r.p50 / d.p50:>10.2f} "
                f"{r.p99 / d.p99:>10.2f} {r.p50 / g.p50:>7.2f} {r.p99 / g.p99:>7.2f} {r.rps / d.rps:>12.2f}"
            )
    print("authorization cost (gateway+authz minus gateway):")
    for n, rows in results.items():
        a_, g = rows["gateway+authz"], rows["gateway"]
        print(f"{n:>12} destinations: p50 +{a_.p50 - g.p50:.2f} ms, p99 +{a_.p99 - g.p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
