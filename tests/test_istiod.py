"""istiod judges our Istio objects: its validating webhook, and what it computes for ztunnel.

A real istiod (pilot-discovery, devenv/istiod.py) runs against the local control plane as the istiod
chart runs it: the platform's rendering of the base and istiod charts, its own ServiceAccount under the
chart's RBAC, ambient on, its webhook switched to fail closed by itself. Every Istio object the example
stacks write goes through that webhook; crafted invalid ones are refused. The authorization ztunnel would
enforce on the gateway's pods is read from istiod over xDS, as ztunnel asks for it, and each team's port
admits that team's namespace only. `istioctl analyze` (same module) finds no error in any example stack.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests import mesh
from components.manifests.stack import stack_objects
from components.settings import names
from components.settings.stackfile import load_stack, platform_stack_file
from devenv.controlplane import ControlPlane, missing_binaries
from devenv.istiod import Istiod, missing_binary
from devenv.kubeapi import KubeApi
from devenv.kyverno_admission import CHARTS_DIR

from .conftest import ROOT

_NO_CHART = None if (CHARTS_DIR / "istiod").is_dir() else f"the istiod chart is not at {CHARTS_DIR / 'istiod'}"
_MISSING = missing_binaries() or missing_binary() or _NO_CHART
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")
PLATFORMS = ("dev", "staging", "prod")
TEAMS = ("team-payments", "team-research", "team-research-staging")
TODAY = dt.date.today()
DENIED = 'admission webhook "validation.istio.io" denied the request'
PLURALS = {"ServiceEntry": "serviceentries", "AuthorizationPolicy": "authorizationpolicies"}
PLURALS |= {"PeerAuthentication": "peerauthentications"}


def _objects(stack: str) -> list[dict[str, Any]]:
    cfg = load_stack(ROOT / f"Pulumi.{stack}.yaml")
    if cfg.is_platform:
        return stack_objects(cfg, TODAY).all()
    platform = load_stack(platform_stack_file(cfg, ROOT))
    return stack_objects(cfg, TODAY, platform.approvals).all()


def _istio(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["apiVersion"].split("/")[0] in ISTIO_GROUPS]


def _path(obj: dict[str, Any]) -> str:
    group_version, meta = obj["apiVersion"], obj["metadata"]
    return f"apis/{group_version}/namespaces/{meta['namespace']}/{PLURALS[obj['kind']]}"


def _namespace(api: KubeApi, obj: dict[str, Any]) -> None:
    ns = obj["metadata"]["namespace"]
    if api.get("Namespace", ns) is None:
        api.request("POST", "api/v1/namespaces", {"metadata": {"name": ns}})


def _create(api: KubeApi, obj: dict[str, Any]) -> tuple[int, str]:
    """A server-side dry run of the object's creation: every admission webhook decides, nothing is stored."""
    _namespace(api, obj)
    status, body = api.request("POST", f"{_path(obj)}?dryRun=All", obj)
    return status, str((body or {}).get("message", "")) if isinstance(body, dict) else str(body)


@pytest.fixture(scope="module")
def istiod() -> Iterator[Istiod]:
    with ControlPlane() as plane, Istiod(plane) as running:
        yield running


@pytest.mark.parametrize("stack", [*PLATFORMS, *TEAMS])
def test_every_istio_object_we_write_is_accepted(istiod: Istiod, stack: str) -> None:
    objs = _istio(_objects(stack))
    assert objs, f"{stack} writes no Istio object"
    for obj in objs:
        status, message = _create(istiod.api, obj)
        assert status == 201, (obj["kind"], obj["metadata"]["name"], message)


def _team_ports_policy() -> dict[str, Any]:
    (policy,) = mesh.listener_authorization(load_stack(ROOT / "Pulumi.dev.yaml").teams)
    return copy.deepcopy(policy)


def _team_entry() -> dict[str, Any]:
    return copy.deepcopy(next(o for o in _objects("team-research") if o["kind"] == "ServiceEntry"))


def _bad_port(policy: dict[str, Any]) -> dict[str, Any]:
    policy["spec"]["rules"][0]["to"][0]["operation"]["ports"] = ["99999"]
    return policy


def _l7_in_l4(policy: dict[str, Any]) -> dict[str, Any]:
    policy["spec"]["rules"][0]["to"][0]["operation"]["methods"] = ["GET", ""]
    return policy


# Each is refused by istiod's validation only: the CRD schemas accept them
# (pkg/config/validation: ValidateServiceEntry, validateExportTo).
def _bad_host(entry: dict[str, Any]) -> dict[str, Any]:
    entry["spec"]["hosts"] = ["api_internal.example.com"]
    return entry


def _endpoint_not_an_ip(entry: dict[str, Any]) -> dict[str, Any]:
    entry["spec"]["resolution"] = "STATIC"
    entry["spec"]["endpoints"] = [{"address": "api.example.com"}]
    return entry


def _exported_badly(entry: dict[str, Any]) -> dict[str, Any]:
    entry["spec"]["exportTo"] = ["~everyone~"]
    return entry


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: _bad_port(_team_ports_policy()), "port"),
        (lambda: _l7_in_l4(_team_ports_policy()), "empty"),
        (lambda: _bad_host(_team_entry()), 'domain name "api_internal.example.com" invalid'),
        (lambda: _endpoint_not_an_ip(_team_entry()), "is not a valid ip address"),
        (lambda: _exported_badly(_team_entry()), "exportto"),
    ],
    ids=[
        "authorization-port-out-of-range",
        "authorization-empty-method",
        "entry-bad-hostname",
        "entry-endpoint-not-an-ip",
        "entry-bad-export",
    ],
)
def test_istiod_refuses_an_invalid_istio_object(istiod: Istiod, make: Any, fragment: str) -> None:
    obj = make()
    obj["metadata"]["name"] = "invalid"
    status, message = _create(istiod.api, obj)
    assert status == 400 and DENIED in message, (status, message)
    assert fragment.lower() in message.lower(), message


def test_ztunnel_is_told_each_team_port_admits_only_its_namespace(istiod: Istiod) -> None:
    platform = load_stack(ROOT / "Pulumi.dev.yaml")
    for obj in mesh.mesh_objects(platform.teams):
        _namespace(istiod.api, obj)
        status, body = istiod.api.request("POST", _path(obj), obj)
        assert status in (201, 409), body
    name = f"{names.GATEWAY_NAMESPACE}/{mesh.listener_authorization(platform.teams)[0]['metadata']['name']}"
    got = istiod.authorizations(expect=[name])
    policy = got[name]
    assert (policy["action"], policy["scope"]) == ("ALLOW", "WORKLOAD_SELECTOR"), policy
    pairs = set()
    for group in policy["groups"]:
        matches = [m for rule in group["rules"] for m in rule["matches"]]
        namespaces = [n["exact"] for m in matches for n in m.get("namespaces", [])]
        ports = [p for m in matches for p in m.get("destination_ports", [])]
        others = {k for m in matches for k in m} - {"namespaces", "destination_ports"}
        assert len(namespaces) == 1 and len(ports) == 1 and not others, group  # one team, one port, nothing else
        pairs.add((namespaces[0], ports[0]))
    assert pairs == {(t.namespace, t.port) for t in platform.teams}
    # STRICT mTLS on the gateway's pods: istiod hands ztunnel a deny of every connection without a peer
    # identity (a principal that is not present), which plaintext from outside the mesh is.
    strict = got["istio-system/istio_converted_static_strict"]
    assert strict["action"] == "DENY" and strict["scope"] == "WORKLOAD_SELECTOR", strict
    assert strict["groups"] == [{"rules": [{"matches": [{"not_principals": [{"presence": {}}]}]}]}], strict


def _analyze(path: Path) -> subprocess.CompletedProcess[str]:
    """istioctl analyze of the objects in `path` alone (no cluster), every namespace (its default is `default` only)."""
    argv = [os.environ["ISTIOCTL_BIN"], "analyze", "--use-kube=false", "--all-namespaces"]
    return subprocess.run(
        [*argv, "--failure-threshold", "Warning", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("stack", [*PLATFORMS, *TEAMS])
def test_istioctl_analyze_finds_no_error(tmp_path: Path, stack: str) -> None:
    path = tmp_path / f"{stack}.yaml"
    path.write_text(yaml.safe_dump_all(_objects(stack), sort_keys=False))
    out = _analyze(path)
    assert out.returncode == 0 and "No validation issues found" in out.stdout + out.stderr, out.stdout + out.stderr


def test_istioctl_analyze_reports_what_istiod_would_refuse(tmp_path: Path) -> None:
    # The negative control of the test above: the same run finds an error it must find.
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([*_objects("team-research"), _bad_host(_team_entry())], sort_keys=False))
    out = _analyze(path)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "IST0106" in out.stdout and "api_internal.example.com" in out.stdout, out.stdout
