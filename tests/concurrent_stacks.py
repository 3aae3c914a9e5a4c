"""Many team stacks deploying at once (test and benchmark helper): N teams on one platform, each team's
stack run by the real Pulumi CLI with the team's own issued identity, all at the same time, on one
shared state backend (PostgreSQL, Pulumi's DIY `postgres://` backend) against a real control plane with
Kyverno's admission controller. Used by tests/test_concurrency.py (a size CI holds) and
benchmarks/bench_concurrency.py (20 stacks)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.manifests import approvals as registry
from components.platform.stack import team_record
from components.settings import config
from components.settings.config import StackConfig
from devenv.postgres import Postgres, postgres
from devenv.scale import platform_config

from .engine import Engine
from .platform_cluster import Cluster, platform_cluster

ROOT = Path(__file__).resolve().parent.parent
FIXTURE: dict[str, Any] = json.loads((ROOT / "tests/fixtures/platform-outputs.json").read_text())
KINDS = ("ServiceEntry", "HTTPRoute", "TrafficPolicy", "GatewayExtension")
UP = ("up", "--yes", "--non-interactive", "--skip-preview")


def stack_name(team: int) -> str:
    return f"team-t{team}"


def team_doc(team: int, timeout: str = "30s") -> dict[str, Any]:
    """Team t<i>'s stack file: one destination, the host its approval names (devenv/scale.py)."""
    return {
        "config": {
            "egress:platformStack": "organization/egress/dev",
            "egress:team": {"name": f"t{team}", "namespace": f"team-t{team}"},
            "egress:destinations": [
                {
                    "name": "api",
                    "host": f"api{team}.example.com",
                    "port": 443,
                    "authz": {"requireHeaders": {"x-egress-client": ["batch"]}},
                    "timeout": timeout,
                }
            ],
        }
    }


@dataclass
class Fleet:
    """N team stacks on one platform and one shared state backend."""

    engine: Engine
    cluster: Cluster
    pg: Postgres
    teams: int

    def env(self, team: int) -> dict[str, str]:
        # Every checkpoint written (the file backend's tests skip them): the shared backend's state must
        # survive a killed update.
        return {"KUBECONFIG": str(self.cluster.kubeconfigs[f"t{team}"]), "PULUMI_SKIP_CHECKPOINTS": "false"}

    def run(self, team: int, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return self.engine.run(*args, "--stack", stack_name(team), env=self.env(team), timeout=timeout)

    def all(
        self, command: Callable[[int], subprocess.CompletedProcess[str]]
    ) -> tuple[dict[int, subprocess.CompletedProcess[str]], dict[int, float], float]:
        """`command` for every team at once: results, each one's seconds, and the wall time of all."""
        took: dict[int, float] = {}

        def timed(team: int) -> subprocess.CompletedProcess[str]:
            start = time.monotonic()
            out = command(team)
            took[team] = time.monotonic() - start
            return out

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.teams) as pool:
            results = dict(zip(range(self.teams), pool.map(timed, range(self.teams)), strict=True))
        return results, took, time.monotonic() - start

    def up_all(self) -> tuple[dict[int, subprocess.CompletedProcess[str]], dict[int, float], float]:
        return self.all(lambda t: self.run(t, *UP))

    def no_changes_all(self) -> tuple[dict[int, subprocess.CompletedProcess[str]], dict[int, float], float]:
        return self.all(lambda t: self.run(t, "preview", "--non-interactive", "--expect-no-changes"))

    def in_cluster(self, team: int) -> dict[str, list[str]]:
        """The team's objects the API server holds, by kind."""
        ns = f"team-t{team}"
        return {k: sorted(o["metadata"]["name"] for o in self.cluster.api.list(k, ns)) for k in KINDS}

    def resources(self, team: int) -> list[str]:
        """The URNs the shared backend holds for the team's stack."""
        out = self.run(team, "stack", "export")
        assert out.returncode == 0, out.stderr
        return sorted(r["urn"] for r in json.loads(out.stdout)["deployment"].get("resources") or [])

    def locks(self, team: int) -> list[str]:
        """The stack's lock rows in the shared backend (`.pulumi/locks/<org>/<project>/<stack>/...`)."""
        rows = self.pg.psql(f"SELECT key FROM pulumi_state WHERE key LIKE '%.pulumi/locks/%/{stack_name(team)}/%'")
        return rows.split()

    def killed_mid_update(self, team: int, timeout: str) -> subprocess.CompletedProcess[str] | None:
        """Start an update that changes the team's stack (its timeout) and kill the CLI and the program
        (SIGKILL, the whole process group) as soon as the engine reports the change under way: what a
        cancelled CI job or a lost runner leaves. The CLI's output if it finished before it could be
        killed (the update of one object takes tens of milliseconds)."""
        self.engine.write_stack(stack_name(team), yaml.safe_dump(team_doc(team, timeout), sort_keys=False))
        proc = subprocess.Popen(
            [sys.executable, "scripts/pulumi_inline.py", *UP, "--stack", stack_name(team)],
            cwd=self.engine.workdir,
            env={**self.engine.env(), **self.env(team)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if any("updating" in line for line in list(lines)):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(30)
                    return None
                time.sleep(0.005)
            proc.wait(30)
            reader.join(10)
            return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), "")
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)


def platform(teams: int) -> StackConfig:
    return config.parse(platform_config(teams))


def outputs(plat: StackConfig) -> dict[str, Any]:
    """What the platform stack publishes for its team stacks (its exports, as components/platform/stack.py
    writes them), over the fixture's cluster addresses."""
    return {
        **FIXTURE,
        "approvals": registry.to_output(plat.approvals_in_force),
        "teams": {t.name: team_record(t) for t in plat.teams},
    }


@contextlib.contextmanager
def fleet(crds_dir: Path, tmp: Path, teams: int) -> Iterator[Fleet]:
    """The platform of `teams` teams on a control plane with admission, its outputs seeded in a shared
    PostgreSQL backend, and each team's stack initialised there (not yet deployed)."""
    plat = platform(teams)
    with postgres() as pg, platform_cluster(crds_dir, tmp, plat) as cluster:
        (tmp / "fleet").mkdir()
        engine = Engine.create(tmp / "fleet")
        engine.backend = pg.url
        engine.seed_platform("dev", outputs(plat))
        for t in range(teams):
            engine.write_stack(stack_name(t), yaml.safe_dump(team_doc(t), sort_keys=False))
            engine.init(stack_name(t))
        yield Fleet(engine, cluster, pg, teams)
