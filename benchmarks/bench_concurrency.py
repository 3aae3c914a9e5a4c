"""20 team stacks `pulumi up` at once on a shared state backend (Pulumi's DIY `postgres://` backend, a
real PostgreSQL on loopback) against a real control plane with Kyverno's admission controller, each
with its team's own identity (tests/concurrent_stacks.py; tests/test_concurrency.py runs 3 in CI).

Prints the wall time of the concurrent `up` and of a concurrent no-change `preview`, each stack's
median and slowest time, and whether every stack converged with nothing lost.

Usage: source .tools.env && python benchmarks/bench_concurrency.py [TEAMS]   (default 20)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.concurrent_stacks import fleet  # noqa: E402

CRDS = Path(os.environ.get("EGRESS_CRDS_DIR", ROOT.parent / "shared" / "crds"))


def main(teams: int) -> int:
    with tempfile.TemporaryDirectory() as tmp, fleet(CRDS, Path(tmp), teams) as f:
        failed = 0
        for label, run in (("up", f.up_all), ("no-change preview", f.no_changes_all)):
            results, took, wall = run()
            bad = [t for t, out in results.items() if out.returncode != 0]
            failed += len(bad)
            each = sorted(took.values())
            print(
                f"{teams} stacks, {label} at once: {wall:.1f} s wall; per stack median {statistics.median(each):.1f} s,"
                f" slowest {each[-1]:.1f} s; {len(results) - len(bad)}/{len(results)} succeeded"
            )
            for t in bad:
                print(f"  team t{t} failed:\n{results[t].stdout[-1500:]}\n{results[t].stderr[-800:]}")
        lost = [t for t in range(teams) if any(len(v) != 1 for v in f.in_cluster(t).values())]
        locked = [t for t in range(teams) if f.locks(t)]
        print(f"objects missing or doubled: {lost or 'none'}; locks left: {locked or 'none'}")
        return 1 if failed or lost or locked else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
