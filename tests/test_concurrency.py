"""Team stacks deploying at once on a shared state backend (Pulumi's DIY `postgres://` backend, a real
PostgreSQL) against a real control plane with Kyverno's admission controller, each with its team's own
identity: every stack converges with nothing lost, a rerun changes nothing, and a stack whose update was
killed (SIGKILL of the CLI and the program, mid-update) recovers as the README documents (`pulumi
cancel`, then `pulumi refresh`, then `pulumi up`). CI's size; benchmarks/bench_concurrency.py runs 20."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv import postgres
from devenv.controlplane import missing_binaries
from devenv.kyverno_admission import CHARTS_DIR, missing_binary

from .concurrent_stacks import Fleet, fleet
from .engine import pulumi_bin

TEAMS = 3
_MISSING = (
    missing_binaries()
    or missing_binary()
    or postgres.missing()
    or (None if pulumi_bin() else "needs the Pulumi CLI from scripts/bootstrap.sh (run through `make test`)")
    or (None if (CHARTS_DIR / "kyverno").is_dir() else f"the kyverno chart is not at {CHARTS_DIR / 'kyverno'}")
)
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


@pytest.fixture(scope="module")
def deployed(crds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """TEAMS team stacks, `pulumi up` all at once; asserted to converge."""
    with fleet(crds_dir, tmp_path_factory.mktemp("fleet"), TEAMS) as f:
        results, took, wall = f.up_all()
        for team, out in results.items():
            assert out.returncode == 0, f"team t{team}:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"
        print(f"{TEAMS} stacks up at once: {wall:.1f} s wall; each {sorted(round(s, 1) for s in took.values())} s")
        yield f


def test_every_stack_converges_and_nothing_is_lost(deployed: Fleet) -> None:
    for team in range(TEAMS):
        held = deployed.in_cluster(team)
        assert all(len(names) == 1 for names in held.values()), (team, held)
        urns = deployed.resources(team)
        # Each stack's state holds its own resources only, every kind its program made.
        assert all(u.startswith(f"urn:pulumi:team-t{team}::") for u in urns), urns
        for kind in held:
            assert any(u.endswith(f"::{kind.lower()}") or f":{kind}::" in u for u in urns), (kind, urns)
        assert deployed.locks(team) == []  # every update released its lock


def test_a_rerun_of_every_stack_at_once_changes_nothing(deployed: Fleet) -> None:
    results, _, _ = deployed.no_changes_all()
    for team, out in results.items():
        assert out.returncode == 0, f"team t{team}:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"


def test_a_stack_killed_mid_update_recovers_as_documented(deployed: Fleet) -> None:
    team = 0
    before = deployed.resources(team)
    early = deployed.killed_mid_update(team, timeout="31s")
    if early is not None:  # the update finished before it could be killed: nothing to recover
        assert early.returncode == 0, early.stdout[-3000:]
        pytest.fail("the update ended before it could be killed; the test could not act")
    # The lock stays: the next update is refused, naming the way out.
    assert deployed.locks(team), "no lock left behind"
    again = deployed.run(team, "up", "--yes", "--non-interactive", "--skip-preview")
    assert again.returncode != 0 and "currently locked" in again.stdout + again.stderr, again.stdout[-2000:]
    assert "pulumi cancel" in again.stdout + again.stderr
    # The documented recovery.
    cancel = deployed.run(team, "cancel", "--yes")
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert deployed.locks(team) == []
    refresh = deployed.run(team, "refresh", "--yes", "--non-interactive", "--clear-pending-creates")
    assert refresh.returncode == 0, refresh.stdout[-3000:] + refresh.stderr[-2000:]
    up = deployed.run(team, "up", "--yes", "--non-interactive", "--skip-preview")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
    tp = deployed.cluster.api.list("TrafficPolicy", f"team-t{team}")
    assert [p["spec"]["timeouts"]["request"] for p in tp] == ["31s"]
    assert deployed.resources(team) == before  # the same resources, none lost or doubled
    no_change = deployed.run(team, "preview", "--non-interactive", "--expect-no-changes")
    assert no_change.returncode == 0, no_change.stdout[-3000:]
    # The other teams' stacks were never touched.
    for other in range(1, TEAMS):
        assert deployed.locks(other) == []
