"""The registry-backed admission policies decided by the Kyverno CLI's engine (`kyverno test`), offline:
the registry and namespaces as cluster resources, the example teams' objects and the attacks as
resources. The same cases run against the real admission controller in test_admission_registry.py and
test_tenant_boundary.py."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests.admission import registry_configmap, registry_policy, route_policy
from components.manifests.stack import stack_objects
from components.settings import versions
from components.settings.stackfile import load_stack

from .conftest import ROOT
from .kyverno_cli import kyverno_bin
from .tenant_cases import CASES
from .test_tenant_cases import attempt, route_policy_for

pytestmark = pytest.mark.skipif(kyverno_bin() is None, reason="needs the Kyverno CLI from scripts/bootstrap.sh")

PLATFORM = load_stack(ROOT / "Pulumi.dev.yaml")
TEAMS = {t.name: t.namespace for t in PLATFORM.teams}


def _entries(stack: str) -> list[dict[str, Any]]:
    cfg = load_stack(ROOT / f"Pulumi.{stack}.yaml")
    return [o for o in stack_objects(cfg, dt.date.today(), PLATFORM.approvals).all() if o["kind"] == "ServiceEntry"]


ALLOWED = [*_entries("team-research"), *_entries("team-payments")]


def _objects(stack: str, kind: str) -> list[dict[str, Any]]:
    cfg = load_stack(ROOT / f"Pulumi.{stack}.yaml")
    return [o for o in stack_objects(cfg, dt.date.today(), PLATFORM.approvals).all() if o["kind"] == kind]


ROUTE_KINDS = ("HTTPRoute", "TrafficPolicy", "GatewayExtension", "BackendConfigPolicy")
ROUTES_ALLOWED = [o for stack in ("team-research", "team-payments") for k in ROUTE_KINDS for o in _objects(stack, k)]


def _crds(crds_dir: Path, kinds: set[str]) -> list[dict[str, Any]]:
    out = []
    for group in ("networking.istio.io", "gateway.networking.k8s.io", "gateway.kgateway.dev"):
        for f in sorted(crds_dir.glob(versions.crd_globs()[group])):
            out += [d for d in yaml.safe_load_all(f.read_text()) if d and d["spec"]["names"]["kind"] in kinds]
    return out


def _write(
    tmp: Path,
    policy: dict[str, Any],
    allowed: list[Any],
    refused: list[Any],
    crds_dir: Path,
    present: Sequence[Any] = (),
) -> Path:
    """A `kyverno test` directory: `policy` must admit `allowed` and refuse `refused`; the CLI's cluster
    holds the namespaces, the registry, the example teams' ServiceEntries and `present`."""
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in [*TEAMS.values(), "rogue"]
    ]
    registry = registry_configmap(PLATFORM.teams, PLATFORM.approvals)
    entries = [e for e in ALLOWED if not any(o is e for o in [*allowed, *refused])]  # under test: there already
    # Under test, and what the policies list (resource.List needs the kind's CRD in the CLI's cluster).
    kinds = {o["kind"] for o in [*allowed, *refused]} | {
        "ServiceEntry",
        "HTTPRoute",
        "TrafficPolicy",
        "GatewayExtension",
    }
    crds = {f"crd-{c['spec']['names']['plural']}.yaml": [c] for c in _crds(crds_dir, kinds)}
    docs: dict[str, list[Any]] = {
        "policy.yaml": [policy],
        "resources.yaml": [*allowed, *refused],
        "clusterresources.yaml": [
            {
                "apiVersion": "cli.kyverno.io/v1alpha1",
                "kind": "ClusterResource",
                "metadata": {"name": "cluster"},
                # The CLI maps kinds to resources from these CRDs.
                # (The resources under test are in the CLI's cluster too: a route finds its TrafficPolicy;
                # the example teams' ServiceEntries are there for the routes that send to them.)
                "spec": {"resources": [*namespaces, registry, *entries, *present], "crds": sorted(crds)},
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
                        "kind": kind,
                        "policy": policy["metadata"]["name"],
                        "resources": [o["metadata"]["name"] for o in objs if o["kind"] == kind],
                        "result": result,
                    }
                    for objs, result in ((allowed, "pass"), (refused, "fail"))
                    for kind in sorted({o["kind"] for o in objs})
                ],
            }
        ],
        # One file per CRD: the CLI reads one document from each.
        **crds,
    }
    for name, content in docs.items():
        (tmp / name).write_text(yaml.safe_dump_all(content, sort_keys=False))
    return tmp


def _kyverno_test(path: Path) -> subprocess.CompletedProcess[str]:
    binary = kyverno_bin()
    assert binary is not None
    return subprocess.run([binary, "test", str(path)], capture_output=True, text=True, timeout=300, check=False)


def test_the_engine_admits_the_examples(tmp_path: Path, crds_dir: Path) -> None:
    """The example teams' own objects, each admitted by the policy that judges its kind (what the
    engine refuses is the tenant cases, below)."""
    out = _kyverno_test(_write(tmp_path, registry_policy(), ALLOWED, [], crds_dir))
    assert out.returncode == 0 and f"{len(ALLOWED)} tests passed and 0 tests failed" in out.stdout, out.stdout


def test_the_engine_admits_the_examples_routes(tmp_path: Path, crds_dir: Path) -> None:
    out = _kyverno_test(_write(tmp_path, route_policy(), ROUTES_ALLOWED, [], crds_dir))
    assert out.returncode == 0 and " 0 tests failed" in out.stdout, out.stdout + out.stderr
    # The CLI may report a resource more than once (one row per result entry that names it); every
    # one of ours is there, and each row passed.
    rows = [r.split("│") for r in out.stdout.splitlines() if route_policy()["metadata"]["name"] in r]
    seen = {r[4].strip().rsplit("/", 3)[-3:][0] + "/" + r[4].strip().rsplit("/", 1)[-1] for r in rows}
    expected = {f"{o['kind']}/{o['metadata']['name']}" for o in ROUTES_ALLOWED}
    assert seen == expected, sorted(seen ^ expected)
    assert all(r[5].strip() == "Pass" for r in rows), out.stdout


def test_a_wrong_expectation_fails_the_run(tmp_path: Path, crds_dir: Path) -> None:
    """Negative control: a tenant case expected to be admitted makes `kyverno test` fail."""
    case = next(c for c in CASES if c.kind == "ServiceEntry")
    out = _kyverno_test(_write(tmp_path, registry_policy(), [attempt(case)], [], crds_dir))
    assert out.returncode != 0 and "0 tests passed and 1 tests failed" in out.stdout, out.stdout + out.stderr


def test_the_engine_refuses_every_tenant_case(tmp_path: Path, crds_dir: Path) -> None:
    """The tenant cases (tests/tenant_cases.py), each decided by the CLI's engine: a ServiceEntry case by
    the registry policy, the others by the route policy; a route case with its own TrafficPolicy present."""
    entries = [attempt(c) for c in CASES if c.kind == "ServiceEntry"]
    others = [attempt(c) for c in CASES if c.kind != "ServiceEntry"]
    policies = [tp for c in CASES if (tp := route_policy_for(c)) is not None]
    for name, policy, refused, present in (
        ("entries", registry_policy(), entries, []),
        ("routes", route_policy(), others, policies),
    ):
        (tmp_path / name).mkdir()
        out = _kyverno_test(_write(tmp_path / name, policy, [], refused, crds_dir, present))
        assert out.returncode == 0 and f"{len(refused)} tests passed and 0 tests failed" in out.stdout, (
            out.stdout[-6000:] + out.stderr
        )
