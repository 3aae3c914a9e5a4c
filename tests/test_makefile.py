"""The Makefile's stack handling, run for real on a copy of the project with its own state folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT
from .engine import pulumi_bin

pytestmark = pytest.mark.skipif(pulumi_bin() is None, reason="needs the tools of scripts/bootstrap.sh (`make test`)")


def _copy(tmp: Path) -> Path:
    work = tmp / "project"
    work.mkdir()
    for name in ("Makefile", "Pulumi.yaml", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "scripts", work / "scripts")
    (work / "policies").mkdir()
    shutil.copy(ROOT / "policies/requirements.txt", work / "policies/requirements.txt")
    return work


def _make(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_BACKEND_URL", "MAKE"))}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_stack_is_created_once_then_selected(tmp_path: Path) -> None:
    work = _copy(tmp_path)
    first = _make(work, "stack", "STACK=mk")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (work / ".pulumi-state").is_dir()  # local file backend inside the project
    again = _make(work, "stack", "STACK=mk")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already exists" not in again.stderr


def test_render_refuses_a_missing_stack_file(tmp_path: Path) -> None:
    work = _copy(tmp_path)
    out = _make(work, "render", "STACK=nope")
    assert out.returncode != 0
    assert "make render: Pulumi.nope.yaml does not exist" in out.stderr
