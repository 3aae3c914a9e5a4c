"""Drives the real Pulumi CLI (built by scripts/bootstrap.sh) on a copy of the project (test helper)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import ROOT

PROJECT_FILES = ["Pulumi.yaml", "components", "policies", "scripts"]
# The dev stack file carries a secret encrypted with the documented dev passphrase.
PASSPHRASE = "egress-dev-only"


def pulumi_bin() -> str | None:
    """The CLI `make test` provides (PULUMI_BIN from the bootstrap environment)."""
    path = os.environ.get("PULUMI_BIN")
    return path if path and os.access(path, os.X_OK) else None


@dataclass
class Engine:
    workdir: Path
    state: Path
    backend: str | None = None  # a state backend URL other than the file backend in `state`

    @classmethod
    def create(cls, tmp: Path) -> Engine:
        work = tmp / "project"
        work.mkdir()
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, work / name)
        for f in ROOT.glob("Pulumi.*.yaml"):
            shutil.copy(f, work / f.name)
        state = tmp / "state"
        state.mkdir()
        return cls(work, state)

    @property
    def kubeconfig(self) -> Path:
        """A copy of tests/fixtures/team-kubeconfig.yaml of this engine's own (nothing writes the repo's)."""
        path = self.state.parent / "team-kubeconfig.yaml"
        if not path.exists():
            shutil.copy(ROOT / "tests/fixtures/team-kubeconfig.yaml", path)
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PULUMI_BACKEND_URL=self.backend or f"file://{self.state}",
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            # Throwaway state: the file backend's per-step checkpoints protect nothing here and cost
            # most of an update's time (benchmarks/bench_lifecycle.py; docs/decisions.md).
            PULUMI_SKIP_CHECKPOINTS="true",
            # A team stack's identity (the one `make team-kubeconfig` writes), for a cluster that is
            # not there (a closed port); never the user's own KUBECONFIG. Tests with a cluster pass theirs.
            KUBECONFIG=str(self.kubeconfig),
        )
        return env

    def run(
        self, *args: str, timeout: int = 300, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "scripts/pulumi_inline.py", *args],
            cwd=self.workdir,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def must(self, *args: str) -> str:
        out = self.run(*args)
        assert out.returncode == 0, f"pulumi {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def write_stack(self, stack: str, text: str) -> None:
        (self.workdir / f"Pulumi.{stack}.yaml").write_text(text)

    def init(self, stack: str) -> None:
        self.must("stack", "init", stack)

    def seed_platform(self, stack: str, outputs: dict[str, Any]) -> None:
        """A platform stack whose state holds only the stack outputs (`pulumi stack import`)."""
        self.init(stack)
        self.set_outputs(stack, outputs)

    def set_outputs(self, stack: str, outputs: dict[str, Any]) -> None:
        """Replace a seeded platform stack's outputs (what its next `pulumi up` would publish)."""
        exported = json.loads(self.must("stack", "export", "--stack", stack))
        exported["deployment"]["resources"] = [
            {
                "urn": f"urn:pulumi:{stack}::egress::pulumi:pulumi:Stack::egress-{stack}",
                "custom": False,
                "type": "pulumi:pulumi:Stack",
                "outputs": outputs,
            }
        ]
        path = self.workdir.parent / f"{stack}-deployment.json"
        path.write_text(json.dumps(exported))
        self.must("stack", "import", "--stack", stack, "--file", str(path))

    def preview(self, stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("preview", "--stack", stack, "--non-interactive", *extra)
