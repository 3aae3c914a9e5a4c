"""Render time and program evaluation time under mocks for N destinations, against a floor.

The floor registers the same number of raw CustomResources (fixed dicts, no config, no builders)
under the same mocks; the ratio is what our validation, builders and components add.

Usage: python benchmarks/bench_render.py [N ...]   (default 10 100 1000; median of 3 runs each)
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
import pulumi_kubernetes as k8s

from components import builders, config
from components.egress import TeamEgress, TeamEgressArgs
from components.render import dump, stack_objects

TODAY = dt.date(2026, 11, 26)
RUNS = 3


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def raw_config(n: int) -> dict[str, Any]:
    return {
        "platformStack": "organization/egress/dev",
        "team": {"name": "bench", "namespace": "team-bench"},
        "destinations": [
            {
                "name": f"d{i}",
                "host": f"api{i}.example.com",
                "port": 443,
                "authz": {"requireHeaders": {"x-client": ["bench"]}},
            }
            for i in range(n)
        ],
    }


def median_seconds(fn: Callable[[int], object], n: int) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def render(n: int) -> None:
    cfg = config.parse(raw_config(n))
    dump(stack_objects(cfg, TODAY, []))


def render_floor(n: int) -> None:
    # The same number of objects, already built: only serialisation.
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "x"}, "spec": {}}
    dump([obj] * (4 * n + 4))


def _under_mocks(program: Callable[[], None]) -> None:
    pulumi.runtime.set_mocks(_Mocks(), project="bench", stack="bench", preview=False)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> pulumi.Output[None]:
        program()
        return pulumi.Output.from_input(None)

    run()


def program(n: int) -> None:
    cfg = config.parse(raw_config(n))
    assert cfg.team is not None
    team = cfg.team

    def build() -> None:
        TeamEgress("team", TeamEgressArgs(team=team, destinations=cfg.destinations, today=TODAY))

    _under_mocks(build)


def program_floor(n: int) -> None:
    cfg = config.parse(raw_config(1))
    assert cfg.team is not None
    objs = builders.destination_objects(cfg.team, cfg.destinations[0])

    def build() -> None:
        for i in range(n):
            for o in objs:
                k8s.apiextensions.CustomResource(
                    f"r{i}-{o['kind']}",
                    api_version=o["apiVersion"],
                    kind=o["kind"],
                    metadata=o["metadata"],
                    spec=o["spec"],
                )

    _under_mocks(build)


def main(sizes: list[int]) -> None:
    print(f"{'N':>6} {'render s':>9} {'floor s':>8} {'ratio':>6}   {'program s':>9} {'floor s':>8} {'ratio':>6}")
    for n in sizes:
        r, rf = median_seconds(render, n), median_seconds(render_floor, n)
        p, pf = median_seconds(program, n), median_seconds(program_floor, n)
        print(f"{n:>6} {r:>9.3f} {rf:>8.3f} {r / rf:>6.2f}   {p:>9.3f} {pf:>8.3f} {p / pf:>6.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100, 1000])
