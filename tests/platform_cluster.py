"""The platform's side of a cluster on a real control plane (test and benchmark helper): the CRDs, Kyverno's
admission controller as the chart's identity, the objects the platform stack creates for admission and
tenancy (from manifests/stack.py), and each team's issued kubeconfig (scripts/team-kubeconfig)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.manifests.stack import stack_objects
from components.settings import names, versions
from components.settings.config import StackConfig
from devenv.controlplane import ControlPlane
from devenv.kubeapi import KubeApi
from devenv.kyverno_admission import KyvernoAdmission, apply, install_crds
from devenv.kyverno_admission import wait_policy_ready as wait_ready

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cluster:
    plane: ControlPlane
    api: KubeApi  # the platform's (admin) access: only to set up and to check what is left
    kubeconfigs: dict[str, Path]  # per team, from scripts/team-kubeconfig


def crds(crds_dir: Path) -> list[dict[str, Any]]:
    out = []
    for group in ("gateway.networking.k8s.io", "networking.istio.io", "gateway.kgateway.dev"):  # Istio: all its CRDs
        for f in sorted(crds_dir.glob(versions.crd_globs()[group])):
            out += [d for d in yaml.safe_load_all(f.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    return out


def platform_objects(platform: StackConfig, today: dt.date) -> list[dict[str, Any]]:
    """What the platform stack creates for admission and tenancy (charts and the gateway aside)."""
    objs = stack_objects(platform, today)
    out = [*objs.gateway, *objs.tenants_namespace, *[o for team in objs.tenants.values() for o in team]]
    # The registry first: the policies read it.
    registry = [o for o in objs.admission if o["kind"] == "ConfigMap"]
    policies = [o for o in objs.admission if o["kind"] == "ValidatingPolicy"]
    return [*out, *registry, *policies]


def team_kubeconfig(plane: ControlPlane, team: str, out: Path) -> Path:
    """The team's identity as the platform's pipeline issues it; never the platform's credential."""
    got = subprocess.run(
        ["scripts/team-kubeconfig", team],
        cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if got.returncode != 0:
        raise RuntimeError(got.stderr)
    assert plane.token not in got.stdout
    path = out / f"{team}.yaml"
    path.write_text(got.stdout)
    return path


def team_api(plane: ControlPlane, kubeconfig: Path) -> KubeApi:
    """API access with the team's issued token only (the kubeconfig's user), for timing writes without
    a kubectl process in between."""
    doc = yaml.safe_load(kubeconfig.read_text())
    return KubeApi(plane.server, doc["users"][0]["user"]["token"], plane.ssl_context())


@contextlib.contextmanager
def platform_cluster(
    crds_dir: Path,
    out: Path,
    platform: StackConfig,
    chart: list[dict[str, Any]] | None = None,
    identities: Sequence[str] | None = None,
) -> Iterator[Cluster]:
    """A control plane with `platform`'s side laid out, Kyverno running as the chart's identity (the
    platform's rendering of the chart unless `chart` is given), and the issued kubeconfig of each team
    in `identities` (default: every team)."""
    with ControlPlane() as plane:
        api = plane.api
        install_crds(api, crds(crds_dir))
        with KyvernoAdmission(plane, chart=chart):
            for obj in platform_objects(platform, dt.date.today()):
                if obj["kind"] == "ReferenceGrant" or obj["kind"] == "Namespace":
                    ns = obj["metadata"].get("namespace")
                    if ns and api.get("Namespace", ns) is None:
                        api.request("POST", "api/v1/namespaces", {"metadata": {"name": ns}})
                apply(api, api.item_path(obj), obj)
            for policy in (names.REGISTRY_POLICY, names.ROUTE_POLICY, names.RETENTION_POLICY):
                wait_ready(api, policy, kind="ValidatingPolicy")
            # Another workload's Service, for a route that tries to send elsewhere.
            api.request("POST", "api/v1/namespaces", {"metadata": {"name": "billing"}})
            teams = [t.name for t in platform.teams] if identities is None else list(identities)
            yield Cluster(plane, api, {team: team_kubeconfig(plane, team, out) for team in teams})
