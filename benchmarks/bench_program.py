"""The program at scale, as whole processes from the stack config, against the bare SDK's floor.

- program: `__main__.py`'s code path (config -> manifests -> components -> registrations) for a team
  stack with N destinations, under Pulumi's mocks (the engine is not measured);
- floor: a process that registers the same objects with the bare SDK (one ComponentResource per
  destination, raw resources under it), from a file of the already-rendered objects, same mocks;
- print: `python -m components.manifests` (`make print`) of the same stack.

Usage: python benchmarks/bench_program.py [N ...]   (default 10 100 1000; median of 5 runs each)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def stack_files(tmp: Path, n: int) -> Path:
    """A platform stack file with approvals and a team stack file with N destinations."""
    hosts = [f"api{i}.example.com" for i in range(n)]
    platform = {
        "config": {
            "egress:platform": {"cluster": {"mode": "existing"}, "ollama": {"enabled": False}},
            "egress:approvals": [
                {
                    "host": h,
                    "ports": [443],
                    "teams": ["bench"],
                    "ticket": "SEC-1",
                    "approvedBy": "security@corp.example",
                    "expires": "2099-12-31",
                }
                for h in hosts
            ],
        }
    }
    team = {
        "config": {
            "egress:platformStack": "organization/egress/bench-platform",
            "egress:team": {"name": "bench", "namespace": "team-bench"},
            "egress:destinations": [
                {"name": f"d{i}", "host": h, "port": 443, "authz": {"requireHeaders": {"x-client": ["bench"]}}}
                for i, h in enumerate(hosts)
            ],
        }
    }
    (tmp / "Pulumi.bench-platform.yaml").write_text(yaml.safe_dump(platform))
    path = tmp / "Pulumi.bench.yaml"
    path.write_text(yaml.safe_dump(team))
    return path


def _mocks(approvals: list[dict[str, Any]]) -> Any:
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            outputs = dict(args.inputs)
            if args.typ == "pulumi:pulumi:StackReference":
                outputs["outputs"] = {"approvals": approvals, "kubeconfig": "{}", "gatewayAddress": "gw"}
            return f"{args.name}-id", outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
            return {}, None

    return Mocks()


def run_program(stack_file: Path) -> None:
    """The program as `pulumi up` runs it, config read the way the engine passes it."""
    import pulumi

    from components.program import main
    from components.settings.stackfile import load_stack

    doc = yaml.safe_load(stack_file.read_text())["config"]
    os.environ["PULUMI_CONFIG"] = json.dumps({k: json.dumps(v) for k, v in doc.items()})
    platform = load_stack(stack_file.parent / "Pulumi.bench-platform.yaml")
    approvals = [a.model_dump(mode="json", by_alias=True) for a in platform.approvals]

    def program() -> pulumi.Output[None]:
        main()
        return pulumi.Output.from_input(None)

    pulumi.runtime.set_mocks(_mocks(approvals), project="egress", stack="bench", preview=False)
    pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]


def run_floor(objects_file: Path) -> None:
    """The bare SDK: the rendered objects, one ComponentResource per destination."""
    import pulumi
    import pulumi_kubernetes as k8s

    groups: dict[str, list[dict[str, Any]]] = json.loads(objects_file.read_text())

    def program() -> pulumi.Output[None]:
        for group, objs in groups.items():
            parent = pulumi.ComponentResource("bench:index:Group", group)
            for o in objs:
                k8s.apiextensions.CustomResource(
                    f"{group}-{o['kind'].lower()}",
                    api_version=o["apiVersion"],
                    kind=o["kind"],
                    metadata=o["metadata"],
                    spec=o.get("spec"),
                    opts=pulumi.ResourceOptions(parent=parent),
                )
        return pulumi.Output.from_input(None)

    pulumi.runtime.set_mocks(_mocks([]), project="egress", stack="bench", preview=False)
    pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]


def rendered_groups(stack_file: Path, out: Path) -> None:
    from components.manifests.stack import team_objects
    from components.settings.stackfile import load_stack

    cfg = load_stack(stack_file)
    registry = load_stack(stack_file.parent / "Pulumi.bench-platform.yaml").approvals
    assert cfg.team is not None
    objs = team_objects(cfg.team, cfg.destinations, registry, dt.date.today())
    groups = {"team": objs.namespace + objs.authz, **objs.destinations}
    out.write_text(json.dumps(groups))


def median_process_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(sizes: list[int]) -> None:
    me = [sys.executable, str(Path(__file__).resolve())]
    print(f"{'N':>6} {'program s':>10} {'floor s':>8} {'ratio':>6}   {'print s':>8}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            stack = stack_files(Path(tmp), n)
            objects = Path(tmp) / "objects.json"
            rendered_groups(stack, objects)
            program = median_process_seconds([*me, "--program", str(stack)])
            floor = median_process_seconds([*me, "--floor", str(objects)])
            printed = median_process_seconds([sys.executable, "-m", "components.manifests", str(stack)])
        print(f"{n:>6} {program:>10.3f} {floor:>8.3f} {program / floor:>6.2f}   {printed:>8.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 3 and sys.argv[1] == "--program":
        run_program(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--floor":
        run_floor(Path(sys.argv[2]))
    else:
        main([int(a) for a in sys.argv[1:]] or [10, 100, 1000])
