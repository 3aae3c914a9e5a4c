"""The registry admission policy decided by the Kyverno CLI's engine (`kyverno test`), offline: the
registry and namespaces as cluster resources, the example teams' ServiceEntries and the attacks as
resources. The same cases run against the real admission controller in test_admission_registry.py."""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests.admission import registry_configmap, registry_policy
from components.manifests.stack import stack_objects
from components.settings import names, versions
from components.settings.stackfile import load_stack

from .conftest import ROOT
from .kyverno_cli import kyverno_bin

pytestmark = pytest.mark.skipif(kyverno_bin() is None, reason="needs the Kyverno CLI from scripts/bootstrap.sh")

PLATFORM = load_stack(ROOT / "Pulumi.dev.yaml")
TEAMS = {t.name: t.namespace for t in PLATFORM.teams}


def _entries(stack: str) -> list[dict[str, Any]]:
    cfg = load_stack(ROOT / f"Pulumi.{stack}.yaml")
    return [o for o in stack_objects(cfg, dt.date.today(), PLATFORM.approvals).all() if o["kind"] == "ServiceEntry"]


def _attack(name: str, host: str, namespace: str, port: int = 443, endpoints: list[str] | None = None) -> Any:
    obj = copy.deepcopy(_entries("team-research")[0])  # carries every approval mark, forged here
    obj["metadata"].update(name=name, namespace=namespace)
    obj["spec"].update(hosts=[host], ports=[{"number": port, "name": "https", "protocol": "HTTPS"}])
    if endpoints:
        obj["spec"].update(resolution="STATIC", endpoints=[{"address": a} for a in endpoints])
    return obj


ALLOWED = [*_entries("team-research"), *_entries("team-payments")]
REFUSED = [
    _attack("forged", "evil.example", TEAMS["research"]),
    _attack("other-team", "api.openai.com", TEAMS["payments"]),
    _attack("redirected", "models.partner.example", TEAMS["payments"], 8080, ["169.254.169.254"]),
    _attack("other-port", "api.openai.com", TEAMS["research"], 80),
    _attack("rogue", "api.openai.com", "rogue"),
]


def _write(tmp: Path, allowed: list[Any], refused: list[Any], crds_dir: Path) -> Path:
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in [*TEAMS.values(), "rogue"]
    ]
    registry = registry_configmap(PLATFORM.teams, PLATFORM.approvals)
    docs = {
        "policy.yaml": [registry_policy()],
        "resources.yaml": [*allowed, *refused],
        "clusterresources.yaml": [
            {
                "apiVersion": "cli.kyverno.io/v1alpha1",
                "kind": "ClusterResource",
                "metadata": {"name": "cluster"},
                # The CLI maps kinds to resources from these CRDs.
                "spec": {"resources": [*namespaces, registry], "crds": ["serviceentries-crd.yaml"]},
            }
        ],
        "values.yaml": [
            {
                "apiVersion": "cli.kyverno.io/v1alpha1",
                "kind": "Value",
                "metadata": {"name": "v"},
                "namespaces": namespaces,
            }
        ],
        "kyverno-test.yaml": [
            {
                "apiVersion": "cli.kyverno.io/v1alpha1",
                "kind": "Test",
                "metadata": {"name": "registry"},
                "policies": ["policy.yaml"],
                "resources": ["resources.yaml"],
                "clusterResources": ["clusterresources.yaml"],
                "variables": "values.yaml",
                "results": [
                    {
                        "isValidatingPolicy": True,
                        "kind": "ServiceEntry",
                        "policy": names.REGISTRY_POLICY,
                        "resources": [o["metadata"]["name"] for o in objs],
                        "result": result,
                    }
                    for objs, result in ((allowed, "pass"), (refused, "fail"))
                    if objs
                ],
            }
        ],
    }
    crds = yaml.safe_load_all((crds_dir / f"istio/{versions.ISTIO_VERSION}/crd-all.gen.yaml").read_text())
    docs["serviceentries-crd.yaml"] = [d for d in crds if d and d["spec"]["names"]["kind"] == "ServiceEntry"]
    for name, content in docs.items():
        (tmp / name).write_text(yaml.safe_dump_all(content, sort_keys=False))
    return tmp


def _kyverno_test(path: Path) -> subprocess.CompletedProcess[str]:
    binary = kyverno_bin()
    assert binary is not None
    return subprocess.run([binary, "test", str(path)], capture_output=True, text=True, timeout=300, check=False)


def test_the_engine_admits_the_examples_and_refuses_every_attack(tmp_path: Path, crds_dir: Path) -> None:
    out = _kyverno_test(_write(tmp_path, ALLOWED, REFUSED, crds_dir))
    total = len(ALLOWED) + len(REFUSED)
    assert out.returncode == 0 and f"{total} tests passed and 0 tests failed" in out.stdout, out.stdout + out.stderr


def test_a_wrong_expectation_fails_the_run(tmp_path: Path, crds_dir: Path) -> None:
    """Negative control: an attack expected to be admitted makes `kyverno test` fail."""
    out = _kyverno_test(_write(tmp_path, [REFUSED[0]], [], crds_dir))
    assert out.returncode != 0 and "0 tests passed and 1 tests failed" in out.stdout, out.stdout + out.stderr
