"""`pulumi up` and a no-change `pulumi preview` of a team stack against `kubectl` on the same objects,
on a real local control plane (no nodes).

For N destinations: `pulumi up` from empty vs `kubectl apply --server-side` of the objects
`make print` writes; a no-change `pulumi preview` vs `kubectl diff --server-side` of the same file.
The platform stack is seeded with its outputs only (its charts are not what is measured); the CRDs
the team's objects need and the team's platform-held objects (namespace, identity) are applied
first, and the team stack runs with its own identity, as in a real deployment. Medians of RUNS
runs, after destroying in between.

Usage: source .tools.env && python benchmarks/bench_lifecycle.py [N ...]   (default 10 100)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_program import stack_files  # noqa: E402
from devenv.controlplane import ControlPlane  # noqa: E402
from tests.engine import Engine  # noqa: E402

RUNS = 3
CRDS = Path(os.environ.get("EGRESS_CRDS_DIR", ROOT.parent / "shared" / "crds"))
CRD_FILES = [
    *sorted((CRDS / "gateway-api/v1.6.1/standard").glob("*.yaml")),
    CRDS / "istio/1.30.3/crd-all.gen.yaml",
    *sorted((CRDS / "kgateway/v2.4.3").glob("*.yaml")),
]


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if out.returncode not in (0, 1) or (out.returncode == 1 and "diff" not in argv):
        raise RuntimeError(f"{' '.join(argv[:4])} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return took


def tenant(kube: list[str], admin: Path, tmp: Path) -> Path:
    """The bench team's platform-held objects (as the platform stack makes them); its kubeconfig."""
    from components.manifests import tenancy
    from components.settings.config import TeamEntry

    shared = [tenancy.tenants_namespace(), tenancy.credentials_namespace()]
    authz_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyverno-authz"}}
    objs = [authz_ns, *shared, *tenancy.tenant_objects(TeamEntry(name="bench", namespace="team-bench", port=10001))]
    (tmp / "tenant.yaml").write_text(yaml.safe_dump_all(objs))
    subprocess.run([*kube, "apply", "--server-side", "-f", str(tmp / "tenant.yaml")], check=True, capture_output=True)
    env = {**os.environ, "KUBECONFIG": str(admin)}
    out = subprocess.run(["scripts/team-kubeconfig", "bench"], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    path = tmp / "bench.kubeconfig"
    path.write_text(out.stdout)
    return path


def measure(n: int) -> dict[str, float]:
    with ControlPlane() as cp, tempfile.TemporaryDirectory() as tmp:
        kube = ["kubectl", "--kubeconfig", str(cp.kubeconfig)]
        for f in CRD_FILES:
            subprocess.run([*kube, "apply", "--server-side", "-f", str(f)], check=True, capture_output=True)
        stack = stack_files(Path(tmp), n)
        team_kubeconfig = tenant(kube, cp.kubeconfig, Path(tmp))
        printed = Path(tmp) / "objects.yaml"
        printed.write_text(
            subprocess.run(
                [sys.executable, "-m", "components.manifests", str(stack)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        (Path(tmp) / "engine").mkdir()
        engine = Engine.create(Path(tmp) / "engine")
        registry = yaml.safe_load((Path(tmp) / "Pulumi.bench-platform.yaml").read_text())["config"]["egress:approvals"]
        engine.seed_platform("bench-platform", {"approvals": registry, "gatewayAddress": "gw"})
        engine.write_stack("bench", stack.read_text())
        engine.init("bench")
        pulumi = [sys.executable, "scripts/pulumi_inline.py"]
        env = {**engine.env(), "KUBECONFIG": str(team_kubeconfig)}
        up, preview, apply, diff = [], [], [], []
        for _ in range(RUNS):
            up.append(timed([*pulumi, "up", "--stack", "bench", "--yes", "--skip-preview"], env, engine.workdir))
            preview.append(timed([*pulumi, "preview", "--stack", "bench", "--expect-no-changes"], env, engine.workdir))
            timed([*pulumi, "destroy", "--stack", "bench", "--yes", "--skip-preview"], env, engine.workdir)
            apply.append(timed([*kube, "apply", "--server-side", "-f", str(printed)]))
            diff.append(timed([*kube, "diff", "--server-side", "-f", str(printed)]))
            delete = [*kube, "delete", "-f", str(printed), "--wait=true"]
            subprocess.run(delete, capture_output=True, check=False)
        return {
            k: statistics.median(v) for k, v in {"up": up, "preview": preview, "apply": apply, "diff": diff}.items()
        }


def main(sizes: list[int]) -> None:
    head = f"{'N':>5} {'pulumi up':>10} {'kubectl apply':>14} {'ratio':>6}"
    print(f"{head}   {'preview':>8} {'kubectl diff':>13} {'ratio':>6}")
    for n in sizes:
        m = measure(n)
        print(
            f"{n:>5} {m['up']:>10.1f} {m['apply']:>14.1f} {m['up'] / m['apply']:>6.2f}   "
            f"{m['preview']:>8.1f} {m['diff']:>13.1f} {m['preview'] / m['diff']:>6.2f}"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100])
