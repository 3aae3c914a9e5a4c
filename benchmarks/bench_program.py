"""The program at scale, as whole processes from the stack config, against the bare SDK's floor.

- program: `__main__.py`'s code path (config -> manifests -> components -> registrations) for a team
  stack with N destinations, under Pulumi's mocks (the engine is not measured). The process gets its
  config as the engine passes it (`PULUMI_CONFIG`, JSON) and the platform's outputs from the mocks;
  reading the stack files is the CLI's work, done before it starts (both come from a JSON file);
- floor: a process that registers the same objects with the bare SDK (one ComponentResource per
  destination, raw resources under it), from a file of the already-rendered objects, same mocks;
- floor-gc: the same floor with the program's garbage-collector thresholds, to show what the
  program's own structure costs once both collect alike;
- print: `python -m components.manifests` (`make print`) of the same stack, from its stack files.

Each figure is the median of RUNS runs, in wall-clock seconds and in CPU seconds (user + system of
the process): on a machine that runs other work, CPU time is the steadier of the two. The program,
the floor and the print run in turn, RUNS rounds; a ratio is the median over the rounds of program
over floor within one round, so that what else the machine does at the time weighs on both. The
load average is printed with them.

With `--teams N ...` the same for the platform stack with N teams (each with its namespace, guard,
identity, credentials, listener and one approval): the program's `platform.build` against the floor
registering the same objects, one ComponentResource per team.

Usage: python benchmarks/bench_program.py [N ...]            (default 10 100 1000)
       python benchmarks/bench_program.py --teams [N ...]    (default 10 100 500)
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def stack_files(tmp: Path, n: int) -> Path:
    """A platform stack file with approvals and a team stack file with N destinations."""
    hosts = [f"api{i}.example.com" for i in range(n)]
    platform = {
        "config": {
            "egress:platform": {"cluster": {"mode": "existing"}, "ollama": {"enabled": False}},
            "egress:teams": [{"name": "bench", "namespace": "team-bench", "port": 10001}],
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


def platform_file(tmp: Path, teams: int) -> Path:
    """A platform stack file (kind, no demo upstream) with N teams and one approval each."""
    from devenv.scale import platform_config

    platform = {"config": {f"egress:{k}": v for k, v in platform_config(teams).items()}}
    path = tmp / "Pulumi.bench-platform.yaml"
    path.write_text(yaml.safe_dump(platform))
    return path


def platform_groups(stack_file: Path, out: Path) -> None:
    """The platform's objects: the shared ones in one group, each team's in a group of its own."""
    from components.manifests.stack import stack_objects
    from components.settings.stackfile import load_stack

    objs = stack_objects(load_stack(stack_file), dt.date.today())
    groups = {"platform": [*objs.gateway, *objs.authz, *objs.admission, *objs.tenants_namespace], **objs.tenants}
    out.write_text(json.dumps(groups))


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


def program_inputs(stack_file: Path, out: Path) -> None:
    """What the engine hands the program, as a file: its config (what `PULUMI_CONFIG` holds) and the
    platform's registry (the StackReference's outputs, for the mocks)."""
    from components.manifests.approvals import to_output
    from components.settings.stackfile import load_stack

    doc = yaml.load(stack_file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["config"]
    platform = load_stack(stack_file.parent / "Pulumi.bench-platform.yaml")
    config = {k: json.dumps(v) for k, v in doc.items()}
    out.write_text(json.dumps({"config": config, "approvals": to_output(platform.approvals)}))


def run_program(inputs_file: Path) -> None:
    """The program as `pulumi up` runs it, config read the way the engine passes it.

    The config is set here rather than by the caller: at 1000 destinations its JSON is larger than
    one environment string may be (128 KiB on Linux), so exec would refuse it.
    """
    import pulumi

    from components.program import main

    inputs = json.loads(inputs_file.read_text())
    os.environ["PULUMI_CONFIG"] = json.dumps(inputs["config"])

    def program() -> pulumi.Output[None]:
        main()
        return pulumi.Output.from_input(None)

    pulumi.runtime.set_mocks(_mocks(inputs["approvals"]), project="egress", stack="bench", preview=False)
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
                    f"{group}-{o['kind'].lower()}-{o['metadata']['name']}",
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
    groups = dict(objs.destinations)
    out.write_text(json.dumps(groups))


@dataclass
class Timing:
    """One command's runs: wall-clock and CPU (user + system) seconds."""

    wall: list[float]
    cpu: list[float]

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def run_once(argv: list[str], timing: Timing) -> None:
    """Run a command once; its stderr is shown only if it fails (at exit, the SDK's event loop may print
    an ignored ValueError from its destructor under mocks, now and then)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        timing.wall.append(time.perf_counter() - start)
        timing.cpu.append(usage.ru_utime + usage.ru_stime)
        if proc.returncode != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace"))
            raise subprocess.CalledProcessError(proc.returncode, argv)


def measure(n: int, teams: bool = False) -> dict[str, Timing]:
    """program, floor, floor with the program's GC thresholds, and print for N destinations (or, with
    `teams`, a platform of N teams), run in turn RUNS times."""
    me = [sys.executable, str(Path(__file__).resolve())]
    timings = {k: Timing([], []) for k in ("program", "floor", "floor-gc", "print")}
    with tempfile.TemporaryDirectory() as tmp:
        stack = platform_file(Path(tmp), n) if teams else stack_files(Path(tmp), n)
        objects, inputs = Path(tmp) / "objects.json", Path(tmp) / "inputs.json"
        (platform_groups if teams else rendered_groups)(stack, objects)
        program_inputs(stack, inputs)
        for _ in range(RUNS):
            run_once([*me, "--program", str(inputs)], timings["program"])
            run_once([*me, "--floor", str(objects)], timings["floor"])
            run_once([*me, "--floor-gc", str(objects)], timings["floor-gc"])
            run_once([sys.executable, "-m", "components.manifests", str(stack)], timings["print"])
    return timings


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over the rounds of a / b, each pair measured in the same round."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def _cell(t: Timing) -> str:
    return f"{t.median_wall:>7.2f} ({t.median_cpu:>5.2f})"


def _ratio(a: Timing, b: Timing) -> str:
    return f"{paired_ratio(a.wall, b.wall):.2f} ({paired_ratio(a.cpu, b.cpu):.2f})"


def main(sizes: list[int], teams: bool = False) -> None:
    print(f"{'teams of a platform' if teams else 'destinations of a team stack'}: N")
    print(f"medians of {RUNS} runs; wall-clock s (CPU s); ratios program / floor, round by round")
    print("floor-gc: the floor with the program's GC thresholds (components.program.GC_THRESHOLDS)")
    head = ["program", "floor", "ratio", "floor-gc", "ratio", "print"]
    print(f"{'N':>6} " + " ".join(f"{h:>15}" for h in head) + "   load (1 min)")
    for n in sizes:
        t = measure(n, teams)
        cells = [
            _cell(t["program"]),
            _cell(t["floor"]),
            _ratio(t["program"], t["floor"]),
            _cell(t["floor-gc"]),
            _ratio(t["program"], t["floor-gc"]),
            _cell(t["print"]),
        ]
        print(f"{n:>6} " + " ".join(f"{c:>15}" for c in cells) + f"   {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 3 and sys.argv[1] == "--program":
        run_program(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] in ("--floor", "--floor-gc"):
        if sys.argv[1] == "--floor-gc":
            from components.program import tune_gc

            tune_gc()
        run_floor(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["--teams"]:
        main([int(a) for a in sys.argv[2:]] or [10, 100, 500], teams=True)
    else:
        main([int(a) for a in sys.argv[1:]] or [10, 100, 1000])
