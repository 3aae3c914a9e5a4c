"""The whole lifecycle on a real control plane: platform and team stacks applied, left alone, changed,
refreshed and destroyed by the real Pulumi engine against a real API server (no nodes: pods never run).

The platform stack runs in existing-cluster mode with charts from a loopback mirror of the pinned
upstream charts and readiness waits off (nothing would ever become ready without nodes). The team
stacks read it through real StackReferences. Every check reads the API server, not our outputs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests import authz
from components.manifests.stack import stack_objects
from components.settings import names
from components.settings.stackfile import load_stack
from devenv.chartmirror import ChartMirror
from devenv.controlplane import ControlPlane, missing_binaries
from devenv.kubeapi import KINDS, KubeApi

from .conftest import CRDS_DIR, ROOT
from .engine import Engine, pulumi_bin

CHARTS_DIR = Path(os.environ.get("EGRESS_CHARTS_DIR", ROOT.parent / "shared" / "charts"))
TEAM_STACKS = ("team-payments", "team-research")
MANAGED = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY_VALUE}"


def _skip_reason() -> str | None:
    if pulumi_bin() is None:
        return "needs the Pulumi CLI from scripts/bootstrap.sh (run through `make test`)"
    missing = missing_binaries()
    if missing:
        return missing
    if not CHARTS_DIR.is_dir() or not CRDS_DIR.is_dir():
        return f"needs the pinned charts and CRDs ({CHARTS_DIR}, {CRDS_DIR}; see shared/)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@dataclass
class Platform:
    engine: Engine
    api: KubeApi
    env: dict[str, str]  # the platform's (admin) access
    team_env: dict[str, dict[str, str]]  # per team stack, its own identity (scripts/team-kubeconfig)
    mirror: ChartMirror


def platform_stack_file(mirror: ChartMirror) -> str:
    """Pulumi.dev.yaml as a platform team would point it at an existing cluster and its chart mirror."""
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["egress:platform"] = {
        "cluster": {"mode": "existing"},
        "ollama": {"enabled": False},
        "sources": {"chartRepository": mirror.url, "gatewayApiManifest": mirror.gateway_api_manifest},
        "waitForReady": False,
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with ControlPlane() as cp, ChartMirror(CHARTS_DIR, CRDS_DIR) as mirror:
        engine = Engine.create(tmp_path_factory.mktemp("lifecycle"))
        engine.write_stack("dev", platform_stack_file(mirror))
        env = {"KUBECONFIG": str(cp.kubeconfig)}
        engine.init("dev")
        up = engine.run("up", "--stack", "dev", "--yes", "--non-interactive", "--skip-preview", env=env, timeout=900)
        assert up.returncode == 0, f"platform up failed:\n{up.stdout[-6000:]}\n{up.stderr[-3000:]}"
        team_env = {}
        for stack in TEAM_STACKS:
            team = stack.removeprefix("team-")
            got = subprocess.run(
                ["scripts/team-kubeconfig", team],
                cwd=ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert got.returncode == 0, got.stderr
            path = engine.workdir.parent / f"{team}.kubeconfig"
            path.write_text(got.stdout)
            team_env[stack] = {"KUBECONFIG": str(path)}
        api = cp.api
        yield Platform(engine, api, env, team_env, mirror)
        down = engine.run("destroy", "--stack", "dev", "--yes", "--non-interactive", env=env, timeout=900)
        assert down.returncode == 0, f"platform destroy failed:\n{down.stdout[-6000:]}\n{down.stderr[-3000:]}"
        # The team namespaces are the platform's: they go with it, none stuck in Terminating.
        for stack in TEAM_STACKS:
            _wait_gone(api, stack)


def _env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {
        e["name"]: e.get("value", "")
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for e in c.get("env") or []
    }


def test_platform_up_creates_every_part_in_the_api_server(platform: Platform) -> None:
    api = platform.api
    for ns in ("istio-system", "kgateway-system", "kyverno", names.AUTHZ_NAMESPACE, names.GATEWAY_NAMESPACE):
        assert api.get("Namespace", ns) is not None, ns
    # The Gateway API bundle and every chart's CRDs.
    for crd in (
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "serviceentries.networking.istio.io",
        "trafficpolicies.gateway.kgateway.dev",
        "clusterpolicies.kyverno.io",
    ):
        assert api.get("CustomResourceDefinition", crd) is not None, crd
    # kgateway really runs with the Istio integration (routes to ServiceEntries).
    kgw = api.get("Deployment", "kgateway", "kgateway-system")
    assert kgw is not None and _env_of(kgw).get("KGW_ENABLE_ISTIO_INTEGRATION") == "true"
    # istiod and the CNI really run the ambient profile.
    istiod = api.get("Deployment", "istiod", "istio-system")
    assert istiod is not None and _env_of(istiod).get("PILOT_ENABLE_AMBIENT") == "true"
    cni = api.get("ConfigMap", "istio-cni-config", "istio-system")
    assert cni is not None and cni["data"].get("AMBIENT_ENABLED") == "true", cni
    assert api.list("DaemonSet", "istio-system", "app.kubernetes.io/name=ztunnel"), "ztunnel DaemonSet"
    # Kyverno's admission controller and the authz server with the policy directory our transform mounts.
    assert api.list("Deployment", "kyverno", "app.kubernetes.io/component=admission-controller")
    (server,) = api.list("Deployment", names.AUTHZ_NAMESPACE, "app.kubernetes.io/component=authz-server")
    pod = server["spec"]["template"]["spec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    mounts = {m["name"]: m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts") or []}
    args = [a for c in pod["containers"] for a in c.get("args") or []]
    sources = [a.split("=", 1)[1] for a in args if a.startswith("--external-policy-source=")]
    for src in authz.POLICY_SOURCES:
        assert volumes[src.volume] == src.configmap and mounts[src.volume] == src.directory
        assert api.get("ConfigMap", src.configmap, names.AUTHZ_NAMESPACE) is not None
    # One source per directory, the default deny last; never the cluster's policies.
    assert sources == [f"file://{s.directory}" for s in authz.POLICY_SOURCES], args
    assert "--kube-policy-source=false" in args
    # The gateway with its access log, the admission policy.
    assert api.get("Gateway", names.GATEWAY_NAME, names.GATEWAY_NAMESPACE) is not None
    assert api.get("ListenerPolicy", names.ACCESS_LOG_POLICY, names.GATEWAY_NAMESPACE) is not None
    # A listener per team on its port, and ztunnel's policies on the gateway's pods.
    for team, port in (("ml", 10001), ("research", 10002), ("payments", 10003)):
        listeners = api.get("ListenerSet", names.team_listener_set(team), names.GATEWAY_NAMESPACE)
        assert listeners is not None and listeners["spec"]["listeners"][0]["port"] == port
    policy = api.get("AuthorizationPolicy", names.LISTENER_AUTHORIZATION, names.GATEWAY_NAMESPACE)
    assert policy is not None and len(policy["spec"]["rules"]) == 3
    assert api.get("PeerAuthentication", names.GATEWAY_PEER_AUTHENTICATION, names.GATEWAY_NAMESPACE) is not None
    assert api.get("ClusterPolicy", "egress-require-approval") is not None
    # The authz chart's webhook judges Envoy-mode policies only (so not the admission policy below).
    status, hooks = api.request("GET", "apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations")
    assert status == 200, hooks
    authz_hooks = [h for c in hooks["items"] for h in c["webhooks"] if h["name"].startswith("kyverno-authz-server")]
    assert authz_hooks and all(authz.ENVOY_MODE_ONLY in h.get("matchConditions", []) for h in authz_hooks)
    # Admission's registry, where no team can write, and the policy that reads it.
    assert api.get("ValidatingPolicy", names.REGISTRY_POLICY) is not None
    assert api.get("ValidatingPolicy", names.ROUTE_POLICY) is not None
    registry = api.get("ConfigMap", names.REGISTRY_CONFIGMAP, names.REGISTRY_NAMESPACE)
    assert registry is not None and '"team-payments": "payments"' in registry["data"]["namespaces.json"]
    # A route's authorization (its TrafficPolicy) cannot be deleted while the route exists.
    assert api.get("ValidatingPolicy", names.RETENTION_POLICY) is not None
    # Each team's namespace, guard, grant and identity are the platform's.
    for team, ns in (("payments", "team-payments"), ("research", "team-research")):
        namespace = api.get("Namespace", ns)
        assert namespace is not None and namespace["metadata"]["labels"][names.AMBIENT_LABEL] == names.AMBIENT_VALUE
        assert api.get("NetworkPolicy", "egress-only-via-gateway", ns) is not None
        binding = api.get("RoleBinding", names.TEAM_ROLE, ns)
        assert binding is not None and binding["subjects"][0]["name"] == names.team_identity(team)
        role = api.get("Role", names.TEAM_ROLE, ns)
        assert role is not None and {g for r in role["rules"] for g in r["apiGroups"]} == {
            "networking.istio.io",
            "gateway.networking.k8s.io",
            "gateway.kgateway.dev",
        }
        token = api.get("Secret", names.team_token(team), names.TENANTS_NAMESPACE)
        assert token is not None and token["data"]["token"], "the token controller filled the team's token in"


# What the API server adds to the specs we send (CRD defaults). Anything else it adds, drops or
# rewrites would be a difference between our schema checks and the real server: it fails here.
SERVER_DEFAULTS = {
    ("GatewayExtension", "spec.extAuth.clearRouteCache"),
    ("GatewayExtension", "spec.extAuth.grpcService.backendRef.group"),
    ("GatewayExtension", "spec.extAuth.grpcService.backendRef.kind"),
    ("GatewayExtension", "spec.extAuth.grpcService.backendRef.weight"),
    ("GatewayExtension", "spec.extAuth.statusOnError"),
    ("HTTPRoute", "spec.rules[].backendRefs[].weight"),
    ("HTTPRoute", "spec.rules[].matches"),
    ("TrafficPolicy", "spec.retry.backoffBaseInterval"),
}


def _added(sent: Any, got: Any, path: str = "spec") -> set[str]:
    """Paths present in `got` but not in `sent` (lists walked element by element); asserts the rest equal."""
    if isinstance(sent, dict) and isinstance(got, dict):
        out = {f"{path}.{k}" for k in got.keys() - sent.keys()}
        for k in sent:
            assert k in got, f"the server dropped {path}.{k}"
            out |= _added(sent[k], got[k], f"{path}.{k}")
        return out
    if isinstance(sent, list) and isinstance(got, list):
        assert len(sent) == len(got), f"the server changed the length of {path}"
        return set().union(*(_added(a, b, f"{path}[]") for a, b in zip(sent, got, strict=True)))
    assert sent == got, f"the server rewrote {path}: {sent!r} -> {got!r}"
    return set()


def _server_defaults(api: KubeApi, stack_file: Path, platform_file: Path) -> set[tuple[str, str]]:
    """(kind, path) of every field the API server added to a team stack's objects."""
    cfg = load_stack(stack_file)
    registry = load_stack(platform_file).approvals
    out: set[tuple[str, str]] = set()
    for obj in stack_objects(cfg, dt.date.today(), registry).all():
        if "spec" not in obj or obj["kind"] not in KINDS:
            continue
        got = api.get(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        assert got is not None, f"{obj['kind']} {obj['metadata']['name']} is missing"
        out |= {(obj["kind"], p) for p in _added(obj["spec"], got["spec"])}
    return out


def _team_objects(api: KubeApi, team: str, namespace: str, destination: str | None = None) -> list[str]:
    selector = f"{MANAGED},{names.TEAM_LABEL}={team}"
    if destination:
        selector += f",{names.DESTINATION_LABEL}={destination}"
    found = []
    for kind in ("ServiceEntry", "HTTPRoute", "TrafficPolicy", "GatewayExtension", "BackendConfigPolicy"):
        found += [f"{kind}/{o['metadata']['name']}" for o in api.list(kind, namespace, selector)]
    return found


def _wait_gone(api: KubeApi, namespace: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while (ns := api.get("Namespace", namespace)) is not None:
        assert time.monotonic() < deadline, f"namespace {namespace} still {ns['status'].get('phase')}"
        time.sleep(1)


def test_team_stacks_up_steady_change_remove_destroy(platform: Platform) -> None:
    """Each team stack runs under its own identity, never the platform's."""
    engine, api = platform.engine, platform.api
    for stack in TEAM_STACKS:
        engine.init(stack)
        env = platform.team_env[stack]
        up = engine.run("up", "--stack", stack, "--yes", "--non-interactive", "--skip-preview", env=env, timeout=600)
        assert up.returncode == 0, f"{stack} up failed:\n{up.stdout[-5000:]}\n{up.stderr[-2000:]}"
    assert len(_team_objects(api, "payments", "team-payments", "ledger")) == 4
    assert len(_team_objects(api, "research", "team-research", "openai")) == 5  # with its TLS origination
    defaults = set().union(
        *(
            _server_defaults(api, engine.workdir / f"Pulumi.{s}.yaml", engine.workdir / "Pulumi.dev.yaml")
            for s in TEAM_STACKS
        )
    )
    extra, missing = sorted(defaults - SERVER_DEFAULTS), sorted(SERVER_DEFAULTS - defaults)
    assert not extra and not missing, f"added by the server: {extra}; no longer added: {missing}"
    # No perpetual diff and no drift: the server's defaults do not show up as changes.
    for stack in TEAM_STACKS:
        for cmd in (("preview",), ("refresh", "--yes")):
            env = platform.team_env[stack]
            out = engine.run(*cmd, "--stack", stack, "--expect-no-changes", "--non-interactive", env=env)
            assert out.returncode == 0, f"{stack} {cmd}:\n{out.stdout[-5000:]}\n{out.stderr[-2000:]}"

    # Change one destination: the plan touches only that destination's objects.
    path = engine.workdir / "Pulumi.team-payments.yaml"
    doc = yaml.safe_load(path.read_text())
    ledger = next(d for d in doc["config"]["egress:destinations"] if d["name"] == "ledger")
    ledger["timeout"] = "6s"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = platform.team_env["team-payments"]
    plan = engine.run("preview", "--stack", "team-payments", "--json", "--non-interactive", env=env)
    assert plan.returncode == 0, plan.stderr
    # The StackReference is read on every run ("read" step); what counts is what would be written.
    steps = json.loads(plan.stdout)["steps"]
    changed = {s["urn"].rsplit("::", 1)[1] for s in steps if s["op"] not in ("same", "read")}
    assert changed == {"team-payments-ledger-trafficpolicy"}, changed

    # Remove it: its objects are gone from the API server.
    doc["config"]["egress:destinations"] = [d for d in doc["config"]["egress:destinations"] if d["name"] != "ledger"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    up = engine.run("up", "--stack", "team-payments", "--yes", "--non-interactive", "--skip-preview", env=env)
    assert up.returncode == 0, up.stdout[-5000:]
    assert _team_objects(api, "payments", "team-payments", "ledger") == []
    assert _team_objects(api, "payments", "team-payments", "partner-models")

    # Destroy: nothing of the team's is left; its namespace and guard stay (the platform's).
    for stack, team in (("team-payments", "payments"), ("team-research", "research")):
        env = platform.team_env[stack]
        down = engine.run("destroy", "--stack", stack, "--yes", "--non-interactive", env=env, timeout=600)
        assert down.returncode == 0, f"{stack} destroy:\n{down.stdout[-5000:]}\n{down.stderr[-2000:]}"
        assert _team_objects(api, team, f"team-{team}") == []
        namespace = api.get("Namespace", f"team-{team}")
        assert namespace is not None and namespace["status"]["phase"] == "Active"
        assert api.get("NetworkPolicy", "egress-only-via-gateway", f"team-{team}") is not None


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_staging_and_prod_platforms_preview_on_a_real_cluster(platform: Platform, stack: str) -> None:
    """`make preview STACK=staging|prod` against an existing cluster, charts from the mirror (the
    loopback one here): the engine plans every release and object, the policy pack passes."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    # What the local control plane cannot be: the company's cluster context and chart mirror.
    doc["config"]["egress:platform"]["cluster"]["context"] = ""
    doc["config"]["egress:platform"]["sources"] = {
        "chartRepository": platform.mirror.url,
        "gatewayApiManifest": platform.mirror.gateway_api_manifest,
    }
    platform.engine.write_stack(stack, yaml.safe_dump(doc, sort_keys=False))
    platform.engine.init(stack)
    out = platform.engine.run(
        "preview", "--stack", stack, "--policy-pack", "policies", "--non-interactive", env=platform.env, timeout=900
    )
    assert out.returncode == 0, f"{stack} preview:\n{out.stdout[-5000:]}\n{out.stderr[-2000:]}"
    assert "mandatory" not in out.stdout
