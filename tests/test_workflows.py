"""The CI workflows users run: linted by actionlint; stack selection and CLI pin checked."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from .conftest import ROOT


def _actionlint() -> str | None:
    path = os.environ.get("ACTIONLINT_BIN")
    return path if path and os.access(path, os.X_OK) else None


@pytest.mark.skipif(
    _actionlint() is None, reason="needs actionlint from scripts/bootstrap.sh (run through `make test`)"
)
def test_workflows_pass_actionlint() -> None:
    files = sorted(str(p) for p in (ROOT / ".github/workflows").glob("*.yml"))
    assert len(files) == 3
    out = subprocess.run([str(_actionlint()), *files], capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(_actionlint() is None, reason="needs actionlint from scripts/bootstrap.sh")
def test_actionlint_catches_a_broken_workflow(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    out = subprocess.run([str(_actionlint()), str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode != 0


def test_pulumi_version_file_matches_the_sdk_pin() -> None:
    pin = next(
        line.split("==")[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("pulumi==")
    )
    assert (ROOT / ".pulumi-version").read_text().strip() == pin


def _git(repo: object, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=str(repo), capture_output=True, text=True, check=True).stdout


def test_changed_stacks_selection(tmp_path: object) -> None:
    from pathlib import Path

    repo = Path(str(tmp_path))
    for f in ("Pulumi.dev.yaml", "Pulumi.team-research.yaml", "Pulumi.team-payments.yaml"):
        (repo / f).write_text("config: {}\n")
    (repo / "components").mkdir()
    (repo / "components/x.py").write_text("")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    script = str(ROOT / ".github/scripts/changed-stacks.sh")

    def changed() -> list[str]:
        out = subprocess.run(["bash", script, "HEAD~1", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        result: list[str] = json.loads(out.stdout)
        return result

    (repo / "Pulumi.team-research.yaml").write_text("config: {a: 1}\n")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "team change")
    assert changed() == ["team-research"]
    (repo / "components/x.py").write_text("# changed\n")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "program change")
    assert changed() == ["dev", "team-payments", "team-research"]
    # Environments: dev, then staging, then prod; in each its platform first.
    for f in (
        "Pulumi.staging.yaml",
        "Pulumi.prod.yaml",
        "Pulumi.team-research-staging.yaml",
        "Pulumi.team-a-prod.yaml",
    ):
        (repo / f).write_text("config: {}\n")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "environments")
    (repo / "components/x.py").write_text("# again\n")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "program change")
    assert changed() == [
        "dev", "team-payments", "team-research", "staging", "team-research-staging", "prod", "team-a-prod"
    ]  # fmt: skip
    staging = subprocess.run(["bash", script, "HEAD~1", "HEAD", "staging"], cwd=repo, capture_output=True, text=True)
    assert json.loads(staging.stdout) == ["staging", "team-research-staging"]


def test_crd_manifest_matches_the_schemas_the_tests_use() -> None:
    """scripts/crds.json pins the same bytes as the CRD folder the tests read."""
    import hashlib

    from .conftest import CRDS_DIR

    if not CRDS_DIR.is_dir():
        pytest.skip(f"CRD schemas not found at {CRDS_DIR}")
    entries = json.loads((ROOT / "scripts/crds.json").read_text())
    assert len(entries) == 27
    for e in entries:
        assert e["url"].startswith("https://raw.githubusercontent.com/")
        assert hashlib.sha256((CRDS_DIR / e["path"]).read_bytes()).hexdigest() == e["sha256"], e["path"]


def _workflow(name: str) -> dict[str, object]:
    import yaml

    doc: dict[str, object] = yaml.safe_load((ROOT / f".github/workflows/{name}").read_text())
    return doc


def test_the_pull_request_gate_uses_the_base_branchs_pack_and_selection() -> None:
    """A pull request cannot loosen the pack, the shared rules or the stack selection it is checked with."""
    jobs = _workflow("preview.yml")["jobs"]
    assert isinstance(jobs, dict)
    steps = jobs["preview"]["steps"]
    base = [s for s in steps if s.get("uses", "").startswith("actions/checkout") and s.get("with", {}).get("path")]
    assert base and base[0]["with"] == {"ref": "${{ github.event.pull_request.base.sha }}", "path": ".base"}
    (pulumi,) = [s for s in steps if s.get("uses", "").startswith("pulumi/actions")]
    assert pulumi["with"]["policyPacks"] == ".base/policies"
    select = next(s for s in jobs["stacks"]["steps"] if s.get("id") == "changed")
    assert select["run"].startswith('echo "stacks=$(.base/.github/scripts/changed-stacks.sh')


def test_each_stack_job_holds_only_its_own_identity() -> None:
    for name, job in (("preview.yml", "preview"), ("up.yml", "up")):
        jobs = _workflow(name)["jobs"]
        assert isinstance(jobs, dict)
        assert jobs[job]["environment"] == "${{ matrix.stack }}", name
        text = (ROOT / f".github/workflows/{name}").read_text()
        assert "secrets.KUBECONFIG" in text and "kubeconfig" not in text.replace("KUBECONFIG", "").replace(
            "$RUNNER_TEMP/kubeconfig", ""
        ).replace("team-kubeconfig", ""), name


def test_codeowners_guard_the_registry_the_pack_and_the_gate() -> None:
    owned = {
        line.split()[0]
        for line in (ROOT / ".github/CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    platforms = {"/Pulumi.dev.yaml", "/Pulumi.staging.yaml", "/Pulumi.prod.yaml"}  # each holds the registry
    assert platforms | {"/policies/", "/.github/", "/components/manifests/admission.py"} <= owned


def test_deploy_goes_dev_then_staging_then_prod() -> None:
    jobs = _workflow("deploy.yml")["jobs"]
    assert isinstance(jobs, dict)
    assert jobs["staging"]["needs"] == ["stacks", "dev"] and jobs["prod"]["needs"] == ["stacks", "staging"]
    assert all(jobs[env]["uses"] == "./.github/workflows/up.yml" for env in ("dev", "staging", "prod"))
    up = _workflow("up.yml")["jobs"]
    assert isinstance(up, dict) and up["up"]["strategy"]["max-parallel"] == 1
