"""Latency the egress path adds over calling the stand-in directly, and requests/s at saturation.

Starts the sandbox (real Envoy from the stack config; the Kyverno authz server too where
KYVERNO_AUTHZ_BIN is set) on loopback. Paths measured with the same Python client:
direct (stand-in), gateway (Envoy, no authz), and gateway + authz (only with the authz server).
p50/p99 at a fixed request rate, and saturation throughput; printed as ratios to direct.

Usage: python benchmarks/bench_path.py [STACK_FILE] [--rate 200] [--seconds 5] [--workers 8]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.settings.stackfile import load_stack
from sandbox.__main__ import Sandbox, allowed_headers


def _conn(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def fixed_rate(port: int, host: str, headers: dict[str, str], rate: int, seconds: float) -> list[float]:
    """Latencies (ms) of requests sent at `rate`/s on one keep-alive connection."""
    conn, out = _conn(port), []
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
    return out


def saturation(port: int, host: str, headers: dict[str, str], workers: int, seconds: float) -> float:
    counts = [0] * workers
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        conn = _conn(port)
        while time.perf_counter() < stop:
            conn.request("GET", "/", headers={"Host": host, **headers})
            conn.getresponse().read()
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("stack", nargs="?", default="Pulumi.dev.yaml")
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--workers", type=int, default=8)
    a = ap.parse_args()
    cfg = load_stack(Path(a.stack))
    assert cfg.team is not None
    dest = cfg.destinations[0]
    authz = os.environ.get("KYVERNO_AUTHZ_BIN") or None
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(cfg.team, list(cfg.destinations), None, Path(tmp))
        try:
            box.start(authz)
            paths: dict[str, tuple[int, dict[str, str]]] = {
                "direct": (box.stand_ins[dest.name].port, {}),
                "gateway": (box.ports["envoy_plain"], {}),
            }
            if authz:
                paths["gateway+authz"] = (box.ports["envoy"], allowed_headers(dest))
            rows = {}
            for name, (port, headers) in paths.items():
                fixed_rate(port, dest.host, headers, a.rate, 1)  # warm-up
                lat = fixed_rate(port, dest.host, headers, a.rate, a.seconds)
                rows[name] = (pct(lat, 50), pct(lat, 99), saturation(port, dest.host, headers, a.workers, a.seconds))
        finally:
            box.stop()
    base = rows["direct"]
    print(f"{a.rate} req/s for {a.seconds:g}s, saturation with {a.workers} workers; stack {a.stack}")
    print(f"{'path':<15} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}   {'p50 x':>6} {'p99 x':>6} {'req/s x':>7}")
    for name, (p50, p99, rps) in rows.items():
        print(
            f"{name:<15} {p50:>8.2f} {p99:>8.2f} {rps:>8.0f}   "
            f"{p50 / base[0]:>6.2f} {p99 / base[1]:>6.2f} {rps / base[2]:>7.2f}"
        )
    if not authz:
        print("gateway+authz not measured: no kyverno-authz server binary (KYVERNO_AUTHZ_BIN)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
