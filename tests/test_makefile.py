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


def _bare_host(work: Path, *tools: str) -> dict[str, str]:
    """A host with only the system's own commands, plus stand-ins for `tools` (none of Go, Docker,
    kind or the tool cache)."""
    bin_dir = work / "host-bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:  # "<command>" or "<command>@<variant>"
        path = bin_dir / tool.split("@")[0]
        path.write_text(TOOL_STANDINS[tool])
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(work / "home"), "EGRESS_TOOLS_CACHE": str(work / "cache")}


def _docker(cpus: int, gib: float) -> str:
    """A `docker` whose `docker info` succeeds and reports `cpus` CPUs and `gib` GiB of memory."""
    return f"#!/bin/sh\n[ \"$2\" = --format ] && echo '{cpus} {int(gib * 1024**3)}'\nexit 0\n"


TOOL_STANDINS = {
    "docker": _docker(8, 15.6),
    "docker@2cpus": _docker(2, 7.7),  # Colima's default CPUs
    "docker@2gib": _docker(4, 1.9),  # an old Docker Desktop's default memory
    "kind@0.29": "#!/bin/sh\necho 'kind v0.29.0 go1.24.2 linux/amd64'\n",
    "kind": "#!/bin/sh\necho 'kind v0.30.0 go1.24.6 linux/amd64'\n",
}


@pytest.mark.parametrize(
    ("tools", "line"),
    [
        ((), "docker is not installed"),
        (("docker",), "kind is not installed: install kind v0.30.0 or later"),
        (("docker", "kind@0.29"), "kind v0.29.0 is older than v0.30.0"),
        (("docker@2cpus", "kind"), "Docker has 2 CPUs; the platform's pods need 3"),
        (("docker@2gib", "kind"), "Docker has 1.9 GiB of memory; the platform's pods need 4 GiB"),
    ],
)
def test_make_up_checks_docker_and_kind_before_installing_anything(
    tmp_path: Path, tools: tuple[str, ...], line: str
) -> None:
    """On a machine without Go, Docker or kind, `make up` says what is missing in one line, at once,
    and has built or installed nothing (no tool cache, no Python environment, no tools file)."""
    work = _copy(tmp_path)
    shutil.copy(ROOT / "Pulumi.dev.yaml", work / "Pulumi.dev.yaml")
    env = _bare_host(work, *tools)
    out = subprocess.run(
        ["make", "--no-print-directory", "up", "STACK=dev"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    (first, *_) = out.stderr.splitlines()
    assert first.startswith("make up: stopped before creating anything: ") and line in first, out.stderr
    assert not (work / "cache").exists() and not (work / ".tools.env").exists()


def test_deploying_never_builds_the_test_toolchain() -> None:
    """`make up` and the other deploy targets use `deploy-tools`, which skips the test tools."""
    text = (ROOT / "Makefile").read_text()
    assert "deploy-tools:\n\t@EGRESS_SKIP_CHECK_TOOLS=1 bash scripts/bootstrap.sh" in text
    for target in ("stack", "outputs", "render"):
        assert f"\n{target}: deploy-tools" in text, target
    up = text.split("\nup:\n", 1)[1].split("\n\n", 1)[0]
    assert up.index("scripts/preflight-host") < up.index("deploy-tools") and " tools" not in up
