"""The tenant boundary, tried as a tenant acting in bad faith: with the team's own issued identity,
against a real API server (RBAC on) and the real Kyverno admission controller enforcing our
policies from the registry the cluster holds.

The platform's side is laid out as the platform stack creates it (the same objects, from
manifests/stack.py): the team namespaces with their guard and grant, the team identities and
their Roles, the registry and the two ValidatingPolicies. Each team's kubeconfig comes from
scripts/team-kubeconfig, as the platform's pipeline gets it. Every attack uses that identity, via
kubectl and, where it differs, via a team stack run without the policy pack; each must be refused
at the earliest layer that can see it, with a message naming the rule, and leave nothing behind.
The example team stacks' own objects pass.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests import admission
from components.manifests.kinds import GATEWAY_API
from components.manifests.stack import stack_objects
from components.platform.charts import Install
from components.platform.kyverno import kyverno_values
from components.rules import (
    allowlist,
    approval,
    authorization,
    bounds,
    budgets,
    credentials,
    endpoints,
    fail_open,
    routes,
    tls,
)
from components.settings import names, versions
from components.settings.stackfile import load_stack
from devenv import chartrender
from devenv.controlplane import missing_binaries
from devenv.kubeapi import KubeApi
from devenv.kyverno_admission import (
    CHARTS_DIR,
    REPORTS_SERVICE_ACCOUNT,
    SERVICE_ACCOUNT,
    apply,
    missing_binary,
)
from devenv.kyverno_admission import NAMESPACE as KYVERNO_NAMESPACE

from .conftest import ROOT
from .engine import Engine, pulumi_bin
from .platform_cluster import Cluster
from .platform_cluster import platform_cluster as platform_cluster_of
from .tenant_cases import CASES, Case
from .test_tenant_cases import attempt, route_policy_for

_NO_CHART = None if (CHARTS_DIR / "kyverno").is_dir() else f"the kyverno chart is not at {CHARTS_DIR / 'kyverno'}"
_MISSING = missing_binaries() or missing_binary() or _NO_CHART
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

PLATFORM = load_stack(ROOT / "Pulumi.dev.yaml")
TEAMS = {t.name: t.namespace for t in PLATFORM.teams}
TODAY = dt.date.today()
FORBIDDEN = "forbidden"  # RBAC's answer, as kubectl prints it


@contextlib.contextmanager
def platform_cluster(crds_dir: Path, out: Path, chart: list[dict[str, Any]] | None = None) -> Iterator[Cluster]:
    """The dev platform's cluster (tests/platform_cluster.py), every team's identity issued."""
    with platform_cluster_of(crds_dir, out, PLATFORM, chart) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster(crds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The platform's cluster with a ServiceEntry of team research's in place (created as the team), the
    backend of the routes the attacks below start from: admission admits a route only to a ServiceEntry
    of its own host."""
    with platform_cluster(crds_dir, tmp_path_factory.mktemp("identities")) as out:
        made = create(out, "research", research("ServiceEntry", TARGET))
        assert made.returncode == 0, made.stderr
        yield out


def kubectl(cluster: Cluster, team: str, *args: str, obj: Any = None) -> subprocess.CompletedProcess[str]:
    """kubectl as the team's identity (its issued kubeconfig only)."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfigs[team]), *args],
        input=json.dumps(obj) if obj is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(cluster.kubeconfigs[team].parent)},
    )


def create(cluster: Cluster, team: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl(cluster, team, "create", "-f", "-", obj=obj)


def refused(cluster: Cluster, team: str, obj: dict[str, Any], *expected: str) -> str:
    """The tenant's write is refused with every expected fragment, and nothing is left; the refusal."""
    out = create(cluster, team, obj)
    assert out.returncode != 0, f"admitted: {obj['kind']} {obj['metadata']['name']}"
    for fragment in expected:
        assert fragment in out.stderr, out.stderr
    meta = obj["metadata"]
    assert cluster.api.get(obj["kind"], meta["name"], meta.get("namespace")) is None
    return out.stderr


def team_objects(stack: str) -> list[dict[str, Any]]:
    cfg = load_stack(ROOT / f"Pulumi.{stack}.yaml")
    return stack_objects(cfg, TODAY, PLATFORM.approvals).all()


TARGET = "attack-target"  # the ServiceEntry the cluster fixture makes; the attack routes send to it


def research(kind: str, name: str | None = None) -> dict[str, Any]:
    """A copy of one of team research's own (legitimate) objects, to tamper with (its route sends to the
    fixture's ServiceEntry)."""
    obj = copy.deepcopy(next(o for o in team_objects("team-research") if o["kind"] == kind))
    if name is not None:
        obj["metadata"]["name"] = name
    if kind == "HTTPRoute":
        for rule in obj["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                backend["name"] = TARGET
    return obj


def renamed(obj: dict[str, Any], name: str = "attack") -> dict[str, Any]:
    obj["metadata"]["name"] = name
    return obj


def named_route(name: str) -> dict[str, Any]:
    """Team research's route under another name, its rule naming the TrafficPolicy of that name."""
    route = renamed(research("HTTPRoute"), name)
    for rule in route["spec"]["rules"]:
        for f in rule.get("filters", []):
            f["extensionRef"]["name"] = name
    return route


def named_policy(name: str) -> dict[str, Any]:
    """Team research's TrafficPolicy under another name, targeting the route of that name."""
    tp = renamed(research("TrafficPolicy"), name)
    tp["spec"]["targetRefs"][0]["name"] = name
    return tp


def set_registry(cluster: Cluster, teams: Any, approvals: list[Any], timeout: float = 60) -> None:
    """Apply a registry and wait until admission decides from it (Kyverno may answer from the one
    before for a moment): it carries a probe approval of its own, polled with a server-side dry run."""
    import time

    from components.manifests.admission import registry_configmap
    from components.settings.config import Approval

    host = f"probe-{os.urandom(4).hex()}.registry.invalid"
    probe = Approval(
        host=host, ports=[443], teams=["research"], ticket="probe", approved_by="probe@corp.example",
        expires=TODAY + dt.timedelta(days=1),
    )  # fmt: skip
    path = f"api/v1/namespaces/{names.REGISTRY_NAMESPACE}/configmaps/{names.REGISTRY_CONFIGMAP}"
    apply(cluster.api, path, registry_configmap(teams, [*approvals, probe]))
    entry = renamed(research("ServiceEntry"), "registry-probe")
    entry["spec"]["hosts"] = [host]
    deadline = time.monotonic() + timeout
    while kubectl(cluster, "research", "create", "--dry-run=server", "-f", "-", obj=entry).returncode != 0:
        assert time.monotonic() < deadline, "admission did not see the new registry"
        time.sleep(0.5)


# --- legitimate flows ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["team-research", "team-payments"])
def test_the_example_teams_objects_are_admitted_under_their_own_identity(cluster: Cluster, stack: str) -> None:
    team = stack.removeprefix("team-")
    objs = team_objects(stack)
    assert {o["kind"] for o in objs} >= {"ServiceEntry", "HTTPRoute", "GatewayExtension", "TrafficPolicy"}
    for obj in objs:
        out = create(cluster, team, obj)
        assert out.returncode == 0, (obj["kind"], obj["metadata"]["name"], out.stderr)
    for obj in reversed(objs):
        out = kubectl(cluster, team, "delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", TEAMS[team])
        assert out.returncode == 0, out.stderr


# Forged approvals, other teams' hosts, endpoints, routes, policies and extensions that break a rule:
# the tenant cases (tests/tenant_cases.py, data), each refused at admission as the team at the end of
# this module. What follows needs more than one object or a change of the registry.


# --- namespaces and names that are not the team's (RBAC) ------------------------------------------


@pytest.mark.parametrize("namespace", ["team-payments", "kube-system", "kyverno", "egress-system", "default"])
def test_writing_outside_its_own_namespace(cluster: Cluster, namespace: str) -> None:
    """Another team's namespace, platform namespaces, and those Kyverno's default config never looks
    at (kube-system, kyverno): RBAC refuses before admission would have to."""
    se = research("ServiceEntry")
    se["metadata"]["namespace"] = namespace
    refused(cluster, "research", se, FORBIDDEN, f'in the namespace "{namespace}"')


def test_a_new_namespace_or_a_claim_on_one(cluster: Cluster) -> None:
    out = create(cluster, "research", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rogue"}})
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    assert cluster.api.get("Namespace", "rogue") is None


def test_colliding_names_in_shared_namespaces(cluster: Cluster) -> None:
    """The only shared namespaces hold platform objects; a team cannot write one, under any name."""
    grant: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": names.object_name("egress-authz", "payments"), "namespace": names.AUTHZ_NAMESPACE},
        "spec": {
            "from": [{"group": "gateway.kgateway.dev", "kind": "GatewayExtension", "namespace": "team-research"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }
    out = kubectl(cluster, "research", "apply", "-f", "-", obj=grant)
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    name = grant["metadata"]["name"]
    for args in (("delete", "referencegrant", name), ("label", "referencegrant", name, "x=y")):
        out = kubectl(cluster, "research", *args, "-n", names.AUTHZ_NAMESPACE)
        assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    assert cluster.api.get("ReferenceGrant", grant["metadata"]["name"], names.AUTHZ_NAMESPACE) is not None


def test_the_registry_and_identities_are_out_of_reach(cluster: Cluster) -> None:
    out = kubectl(
        cluster,
        "research",
        "patch",
        "configmap",
        names.REGISTRY_CONFIGMAP,
        "-n",
        names.REGISTRY_NAMESPACE,
        "--type=merge",
        "-p",
        '{"data": {"namespaces.json": "{}"}}',
    )
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    for args in (
        ("get", "secret", names.team_token("payments"), "-n", names.TENANTS_NAMESPACE),  # another team's token
        ("get", "secrets", "-n", TEAMS["research"]),
        ("create", "rolebinding", "escalate", "--clusterrole=cluster-admin", "--user=x", "-n", TEAMS["research"]),
    ):
        got = kubectl(cluster, "research", *args)
        assert got.returncode != 0 and FORBIDDEN in got.stderr, (args, got.stderr)
    out = kubectl(
        cluster,
        "research",
        "patch",
        "role",
        names.TEAM_ROLE,
        "-n",
        TEAMS["research"],
        "--type=json",
        "-p",
        '[{"op": "add", "path": "/rules/-", "value": {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}}]',
    )
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr


def test_removing_the_egress_guard_or_leaving_the_mesh(cluster: Cluster) -> None:
    ns = TEAMS["research"]
    out = kubectl(cluster, "research", "delete", "networkpolicy", "egress-only-via-gateway", "-n", ns)
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    out = kubectl(cluster, "research", "label", "namespace", ns, f"{names.AMBIENT_LABEL}-")
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    assert cluster.api.get("NetworkPolicy", "egress-only-via-gateway", ns) is not None
    namespace = cluster.api.get("Namespace", ns)
    assert namespace is not None and namespace["metadata"]["labels"][names.AMBIENT_LABEL] == names.AMBIENT_VALUE


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "app",
        "image": versions.CURL_IMAGE,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": TEAMS["research"]},
        "spec": {"containers": [container], **spec},
    }


@pytest.mark.parametrize(
    ("spec", "violation"),
    [
        ({"hostNetwork": True}, "host namespaces"),  # leaves the NetworkPolicy and the mesh
        ({"hostPID": True}, "host namespaces"),
        ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, 'restricted volume type "hostPath"'),
    ],
    ids=["hostNetwork", "hostPID", "hostPath"],
)
def test_a_pod_that_would_bypass_the_guard(cluster: Cluster, spec: dict[str, Any], violation: str) -> None:
    """Whoever deploys the team's workloads (not the stack's identity, which has no pod rights): the API
    server's Pod Security admission enforces `restricted` in the team's namespace, for every user."""
    pod = _pod("bypass", **spec)
    status, body = cluster.api.request("POST", f"api/v1/namespaces/{TEAMS['research']}/pods?dryRun=All", pod)
    message = body.get("message", "") if isinstance(body, dict) else ""
    assert status == 403 and "violates PodSecurity" in message and violation in message, body
    # A workload that keeps to `restricted` is admitted (dry run: nothing is left).
    status, body = cluster.api.request("POST", f"api/v1/namespaces/{TEAMS['research']}/pods?dryRun=All", _pod("ok"))
    assert status == 201, body
    # The stack's identity cannot run pods at all, nor relabel its namespace's Pod Security level.
    assert create(cluster, "research", _pod("bypass")).returncode != 0
    out = kubectl(
        cluster, "research", "label", "--overwrite", "namespace", TEAMS["research"],
        "pod-security.kubernetes.io/enforce=privileged",
    )  # fmt: skip
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr


# --- what attaches to the shared gateway (admission, from the registry) ----------------------------


OWN_LISTENER = "attaches only to its team's own listener"


def test_two_teams_approved_for_one_host_each_route_it_on_their_own_listener(cluster: Cluster) -> None:
    """Security approves api.openai.com for payments too: each team's route for it is admitted on its
    own listener only (its own port; kgateway merges routes by hostname only among the listeners of a
    port), so neither team's route can capture the other's requests; payments' route on research's
    listener is refused."""
    from components.settings import config

    host = "api.openai.com"
    shared = [
        a.model_copy(update={"teams": [*a.teams, "payments"]}) if a.host == host else a for a in PLATFORM.approvals
    ]
    set_registry(cluster, PLATFORM.teams, shared)
    cfg = config.parse(
        {
            "platformStack": "organization/egress/dev",
            "team": {"name": "payments", "namespace": TEAMS["payments"]},
            "destinations": [
                {
                    "name": "shared",
                    "host": host,
                    "port": 443,
                    "protocol": "HTTPS",
                    "authz": {"requireHeaders": {"x-c": ["p"]}},
                }
            ],
        }
    )
    objs = [
        o
        for o in stack_objects(cfg, TODAY, shared).all()
        if o["kind"] in ("ServiceEntry", "GatewayExtension", "TrafficPolicy", "HTTPRoute")
    ]
    ports = {t.name: t.port for t in PLATFORM.teams}
    try:
        for obj in objs:
            out = create(cluster, "payments", obj)
            assert out.returncode == 0, out.stderr
        route = cluster.api.get("HTTPRoute", objs[-1]["metadata"]["name"], TEAMS["payments"])
        assert route is not None and route["spec"]["hostnames"] == [host]
        assert [p["name"] for p in route["spec"]["parentRefs"]] == [names.team_listener_set("payments")]
        assert ports["payments"] != ports["research"]
        capture = renamed(copy.deepcopy(objs[-1]), "capture")
        capture["spec"]["parentRefs"][0]["name"] = names.team_listener_set("research")
        refused(cluster, "payments", capture, names.ROUTE_POLICY, OWN_LISTENER)
    finally:
        for obj in reversed(objs):
            kubectl(
                cluster, "payments", "delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", TEAMS["payments"]
            )
        set_registry(cluster, PLATFORM.teams, PLATFORM.approvals)


@pytest.mark.parametrize(
    "parent",
    [
        # Another team's listener: its port is the one only that team's namespace may open.
        {"kind": "ListenerSet", "name": names.team_listener_set("payments"), "sectionName": names.TEAM_LISTENER},
        # The Gateway itself, its own listener or none.
        {"kind": "Gateway", "name": names.GATEWAY_NAME, "sectionName": names.GATEWAY_LISTENER},
        {"kind": "Gateway", "name": names.GATEWAY_NAME},
        # Its own ListenerSet, but by port or without the listener's name.
        {"kind": "ListenerSet", "name": names.team_listener_set("research"), "port": 10003},
        {"kind": "ListenerSet", "name": names.team_listener_set("research")},
    ],
    ids=["other-teams-listener", "gateway-listener", "gateway-whole", "own-set-by-port", "own-set-no-section"],
)
def test_a_route_on_a_listener_not_its_own(cluster: Cluster, parent: dict[str, Any]) -> None:
    route = renamed(research("HTTPRoute"))
    route["spec"]["parentRefs"] = [
        {"group": "gateway.networking.k8s.io", "namespace": names.GATEWAY_NAMESPACE, **parent}
    ]
    refused(cluster, "research", route, names.ROUTE_POLICY, OWN_LISTENER)


def test_a_route_on_its_own_listener_and_another(cluster: Cluster) -> None:
    route = renamed(research("HTTPRoute"))
    other = {**route["spec"]["parentRefs"][0], "name": names.team_listener_set("ml")}
    route["spec"]["parentRefs"].append(other)
    refused(cluster, "research", route, names.ROUTE_POLICY, OWN_LISTENER)


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet", "spec": {}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "spec": {"action": "ALLOW"}},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "spec": {"mtls": {"mode": "DISABLE"}}},
    ],
    ids=lambda o: o["kind"],
)
def test_listeners_and_mesh_policies_are_the_platforms(cluster: Cluster, obj: dict[str, Any]) -> None:
    """A team can open no listener of its own and change nothing ztunnel enforces, in its namespace
    or the gateway's: RBAC refuses."""
    for ns in (TEAMS["research"], names.GATEWAY_NAMESPACE):
        attempt = {**copy.deepcopy(obj), "metadata": {"name": "attack", "namespace": ns}}
        refused(cluster, "research", attempt, FORBIDDEN)


def test_the_platforms_listeners_and_mesh_policies_are_accepted(cluster: Cluster) -> None:
    """The gateway's objects as the platform stack creates them: the real API server takes the
    Gateway, every team's ListenerSet, the AuthorizationPolicy and the PeerAuthentication."""
    for obj in stack_objects(PLATFORM, TODAY).gateway:
        meta = obj["metadata"]
        assert cluster.api.get(obj["kind"], meta["name"], meta.get("namespace")) is not None, obj["kind"]
    listeners = cluster.api.get("ListenerSet", names.team_listener_set("payments"), names.GATEWAY_NAMESPACE)
    assert listeners is not None and listeners["spec"]["listeners"][0]["port"] == 10003


def test_a_route_without_its_authorization(cluster: Cluster) -> None:
    """A route on the gateway with no TrafficPolicy (so no external authorization) is refused, and a
    route's policy cannot be deleted while the route exists; in the right order both go through."""
    route = named_route("bare")
    refused(cluster, "research", route, "needs its TrafficPolicy with external authorization first")
    tp = named_policy("bare")
    assert create(cluster, "research", tp).returncode == 0
    assert create(cluster, "research", route).returncode == 0
    ns = TEAMS["research"]
    out = kubectl(cluster, "research", "delete", "trafficpolicy", "bare", "-n", ns)
    assert out.returncode != 0 and names.RETENTION_POLICY in out.stderr and "delete the route first" in out.stderr
    assert cluster.api.get("TrafficPolicy", "bare", ns) is not None
    for kind in ("httproute", "trafficpolicy"):
        out = kubectl(cluster, "research", "delete", kind, "bare", "-n", ns)
        assert out.returncode == 0, out.stderr


def _at_once(*calls: Any) -> None:
    """Runs the calls in threads released together (a barrier), and waits for all."""
    import threading

    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> None:
        barrier.wait(10)
        call()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_deleting_a_routes_policy_while_creating_the_route_is_harmless(cluster: Cluster) -> None:
    """The race admission cannot see (each write judged against the other object's old state):
    40 times, the route's TrafficPolicy is deleted while the route is created. Whatever admission
    lets through, a route is left only naming its policy in its rule's filter, which kgateway
    answers with a 500 when the policy is gone (the sandbox's `its TrafficPolicy gone` scenario)."""
    ns, outcomes = TEAMS["research"], {"route refused": 0, "delete refused": 0, "both went through": 0}
    for i in range(40):
        name = f"race-{i}"
        assert create(cluster, "research", named_policy(name)).returncode == 0
        route = named_route(name)
        delete = ("delete", "trafficpolicy", name, "-n", ns)
        _at_once(lambda: create(cluster, "research", route), lambda: kubectl(cluster, "research", *delete))  # noqa: B023
        left, policy = cluster.api.get("HTTPRoute", name, ns), cluster.api.get("TrafficPolicy", name, ns)
        outcome = "route refused" if left is None else "delete refused" if policy is not None else "both went through"
        outcomes[outcome] += 1
        if left is not None:  # every rule names the policy: gone, it is a 500 at the gateway
            assert all(
                any(f.get("extensionRef", {}).get("name") == name for f in r.get("filters", []))
                for r in left["spec"]["rules"]
            ), left["spec"]
        for kind in ("httproute", "trafficpolicy"):
            kubectl(cluster, "research", "delete", kind, name, "-n", ns, "--ignore-not-found")
    assert sum(outcomes.values()) == 40, outcomes
    print(f"race outcomes over 40 tries: {outcomes}")


# --- the same attacks through a team stack run without the policy pack ------------------------------


@pytest.fixture(scope="module")
def engine(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if pulumi_bin() is None:
        pytest.skip("needs the Pulumi CLI from scripts/bootstrap.sh (run through `make test`)")
    from .test_engine_preview import FIXTURE

    e = Engine.create(tmp_path_factory.mktemp("tenant-stacks"))
    e.seed_platform("dev", FIXTURE)
    return e


def _team_up(engine: Engine, cluster: Cluster, team: str, stack: str, doc: dict[str, Any]) -> Any:
    engine.write_stack(stack, yaml.safe_dump(doc, sort_keys=False))
    engine.init(stack)
    env = {"KUBECONFIG": str(cluster.kubeconfigs[team])}
    return engine.run("up", "--stack", stack, "--yes", "--non-interactive", "--skip-preview", env=env, timeout=300)


def _example(stack: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return doc


def test_a_team_stack_under_its_identity_goes_up_and_down(engine: Engine, cluster: Cluster) -> None:
    up = _team_up(engine, cluster, "payments", "team-payments", _example("team-payments"))
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
    assert cluster.api.get("TrafficPolicy", "egress-ledger", TEAMS["payments"]) is not None
    env = {"KUBECONFIG": str(cluster.kubeconfigs["payments"])}
    down = engine.run("destroy", "--stack", "team-payments", "--yes", "--non-interactive", env=env, timeout=300)
    assert down.returncode == 0, down.stdout[-4000:]
    assert cluster.api.list("TrafficPolicy", TEAMS["payments"]) == []


def test_a_team_stack_without_the_pack_and_an_unapproved_host(engine: Engine, cluster: Cluster) -> None:
    doc = _example("team-research")
    doc["config"]["egress:destinations"][0]["host"] = "exfil.example"
    up = _team_up(engine, cluster, "research", "team-research-exfil", doc)
    text = up.stdout + up.stderr
    assert up.returncode != 0
    assert "egress-registry-approval" in text and "exfil.example on ports 443 is not approved" in text, text[-3000:]
    assert "Traceback" not in text
    assert [
        o for o in cluster.api.list("ServiceEntry", TEAMS["research"]) if "exfil.example" in o["spec"]["hosts"]
    ] == []
    env = {"KUBECONFIG": str(cluster.kubeconfigs["research"])}
    engine.run("destroy", "--stack", "team-research-exfil", "--yes", "--non-interactive", env=env, timeout=300)


def test_a_team_stack_that_claims_another_teams_namespace(engine: Engine, cluster: Cluster) -> None:
    doc = _example("team-payments")
    doc["config"]["egress:team"] = {"name": "research", "namespace": TEAMS["research"]}
    up = _team_up(engine, cluster, "payments", "team-payments-claim", doc)
    text = up.stdout + up.stderr
    assert up.returncode != 0 and FORBIDDEN in text, text[-3000:]
    assert [e for e in cluster.api.list("ServiceEntry", TEAMS["research"]) if e["metadata"]["name"] != TARGET] == []


def test_fail_open_where_security_approved_it(cluster: Cluster) -> None:
    """Negative control for the fail-open rules: with an approval that allows it, the same objects pass."""
    host = "api.openai.com"
    approvals = [a.model_copy(update={"allow_fail_open": a.host == host}) for a in PLATFORM.approvals]
    set_registry(cluster, PLATFORM.teams, approvals)
    kinds = ("ServiceEntry", "HTTPRoute", "GatewayExtension", "TrafficPolicy")
    objs = [o for o in team_objects("team-research") if o["kind"] in kinds]
    try:
        for obj in objs:
            if obj["kind"] == "GatewayExtension":
                obj["spec"]["extAuth"]["failOpen"] = True
            out = create(cluster, "research", obj)
            assert out.returncode == 0, (obj["kind"], out.stderr)
    finally:
        set_registry(cluster, PLATFORM.teams, PLATFORM.approvals)
    # The approval withdrawn, the route can no longer be changed while its authorization fails open.
    route = next(o for o in objs if o["kind"] == "HTTPRoute")
    route["metadata"].setdefault("labels", {})["touched"] = "yes"
    out = kubectl(cluster, "research", "apply", "-f", "-", obj=route)
    assert out.returncode != 0 and "its authorization fails open" in out.stderr, out.stderr
    for obj in reversed(objs):
        kubectl(cluster, "research", "delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", TEAMS["research"])


# --- credentials and budgets -------------------------------------------------------------------------


def _header_from(ref: dict[str, str]) -> dict[str, Any]:
    return {"headerModifiers": {"request": {"set": [{"name": "Authorization", "secretRef": ref}]}}}


UNREADABLE = "app-database"  # a Secret in the team's own namespace that its identity may not read


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("TrafficPolicy", _header_from({"name": UNREADABLE, "key": "password"}), "only from the team's own Secret"),
        (
            "TrafficPolicy",
            _header_from({"name": UNREADABLE, "namespace": TEAMS["research"], "key": "password"}),
            "only from the team's own Secret",
        ),
        ("TrafficPolicy", {"apiKeyAuth": {"secretRef": {"name": UNREADABLE}}}, "names no Secret to check clients"),
        (
            "TrafficPolicy",
            {"apiKeyAuth": {"secretRef": {"name": TEAMS["payments"], "namespace": names.CREDENTIALS_NAMESPACE}}},
            "names no Secret to check clients",
        ),
        ("TrafficPolicy", {"apiKeyAuth": {"secretSelector": {"matchLabels": {"a": "b"}}}}, "names no Secret"),
        ("TrafficPolicy", {"basicAuth": {"secretRef": {"name": UNREADABLE}}}, "names no Secret to check clients"),
        (
            "BackendConfigPolicy",
            {
                "tls": {
                    "sni": "api.openai.com",
                    "verifySubjectAltNames": ["api.openai.com"],
                    "secretRef": {"name": UNREADABLE},
                }
            },
            "names no Secret (tls.secretRef)",
        ),
    ],
    ids=[
        "header-own-namespace",
        "header-own-namespace-explicit",
        "api-key-auth",
        "api-key-auth-other-team",
        "api-key-auth-selector",
        "basic-auth",
        "backend-tls-key",
    ],
)
def test_a_policy_that_names_a_secret_the_team_may_not_read(
    cluster: Cluster, kind: str, spec: dict[str, Any], message: str
) -> None:
    # The Secret exists and the team's identity may not read it; kgateway would, with its own rights.
    ns = TEAMS["research"]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": UNREADABLE, "namespace": ns}}
    apply(cluster.api, cluster.api.item_path({**secret, "kind": "Secret"}), {**secret, "stringData": {"password": "p"}})
    out = kubectl(cluster, "research", "get", "secret", UNREADABLE, "-n", ns)
    assert out.returncode != 0 and FORBIDDEN in out.stderr, out.stderr
    obj = renamed(research(kind))
    obj["spec"] = {**obj["spec"], **spec}
    refused(cluster, "research", obj, names.ROUTE_POLICY, message)


def test_credentials_secrets_are_each_teams_own(cluster: Cluster) -> None:
    ns = names.CREDENTIALS_NAMESPACE
    patch = '{"stringData": {"openai": "Bearer x"}}'
    own = kubectl(cluster, "research", "patch", "secret", TEAMS["research"], "-n", ns, "--type=merge", "-p", patch)
    assert own.returncode == 0, own.stderr
    for args in (
        ("patch", "secret", TEAMS["payments"], "-n", ns, "--type=merge", "-p", patch),
        ("get", "secret", TEAMS["payments"], "-n", ns),
        ("create", "secret", "generic", "another", "--from-literal=k=v", "-n", ns),
        ("get", "secrets", "-n", ns),
    ):
        out = kubectl(cluster, "research", *args)
        assert out.returncode != 0 and FORBIDDEN in out.stderr, (args, out.stderr)
    kubectl(cluster, "research", "patch", "secret", TEAMS["research"], "-n", ns, "--type=json", "-p",
            '[{"op": "remove", "path": "/data"}]')  # fmt: skip


def test_budgets_keep_within_what_security_approved(cluster: Cluster) -> None:
    """With a ceiling on api.openai.com: a policy without a budget, or above it, is refused; within, admitted."""
    from components.settings.config import Budget

    ceiling = Budget(requests=120, per="1m", burst=20)
    approvals = [
        a.model_copy(update={"rate_limit": ceiling if a.host == "api.openai.com" else None}) for a in PLATFORM.approvals
    ]
    set_registry(cluster, PLATFORM.teams, approvals)
    ns, route, within = TEAMS["research"], named_route("within"), named_policy("within")
    within["spec"]["rateLimit"] = {
        "local": {"tokenBucket": {"maxTokens": 20, "tokensPerFill": 1, "fillInterval": "500ms"}}
    }
    try:
        # Within the ceiling, the route's policy first, then the route (which checks its policies too).
        assert create(cluster, "research", within).returncode == 0
        out = create(cluster, "research", route)
        assert out.returncode == 0, out.stderr
        # The tenant then raises its budget, drops it, or bursts past the ceiling: each update is refused.
        over, bursty, none = (copy.deepcopy(within) for _ in range(3))
        over["spec"]["rateLimit"]["local"]["tokenBucket"].update(tokensPerFill=3, fillInterval="1s")
        bursty["spec"]["rateLimit"]["local"]["tokenBucket"].update(maxTokens=21, tokensPerFill=2, fillInterval="1s")
        del none["spec"]["rateLimit"]
        for change in (over, bursty, none):
            out = kubectl(cluster, "research", "replace", "-f", "-", obj=change)
            assert out.returncode != 0, "admitted"
            assert "must keep within the rate and burst security approved" in out.stderr, out.stderr
        kept = cluster.api.get("TrafficPolicy", "within", ns)
        assert kept is not None and kept["spec"]["rateLimit"] == within["spec"]["rateLimit"]
    finally:
        kubectl(cluster, "research", "delete", "httproute", route["metadata"]["name"], "-n", ns)
        kubectl(cluster, "research", "delete", "trafficpolicy", "within", "-n", ns)
        set_registry(cluster, PLATFORM.teams, PLATFORM.approvals)


def test_a_credential_never_appears_in_clear(engine: Engine, cluster: Cluster) -> None:
    """A team stack with a credential, under its identity, without the pack: the Secret in the cluster
    holds the header value; the state, the outputs and the engine's output never hold the key."""
    import base64

    key = "sk-test-" + os.urandom(12).hex()
    doc = _example("team-research")
    doc["config"]["egress:destinations"][0]["credential"] = {
        "header": "Authorization",
        "format": "Bearer {}",
        "secret": "openai-key",
    }
    stack = "team-research-key"
    engine.write_stack(stack, yaml.safe_dump(doc, sort_keys=False))
    engine.init(stack)
    engine.must("config", "set", "--secret", "--path", "egress:credentials.openai-key", key, "--stack", stack)
    env = {"KUBECONFIG": str(cluster.kubeconfigs["research"])}
    up = engine.run("up", "--stack", stack, "--yes", "--non-interactive", "--skip-preview", env=env, timeout=300)
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
    try:
        secret = cluster.api.get("Secret", TEAMS["research"], names.CREDENTIALS_NAMESPACE)
        assert secret is not None and base64.b64decode(secret["data"]["openai"]).decode() == f"Bearer {key}"
        state = engine.must("stack", "export", "--stack", stack)
        outputs = engine.must("stack", "output", "--json", "--show-secrets", "--stack", stack)
        stack_file = (engine.workdir / f"Pulumi.{stack}.yaml").read_text()
        for where, text in (
            ("state", state),
            ("outputs", outputs),
            ("engine output", up.stdout + up.stderr),
            ("stack file", stack_file),
        ):
            assert key not in text, f"the key is in clear in the {where}"
        tp = cluster.api.get("TrafficPolicy", "egress-openai", TEAMS["research"])
        assert (
            tp is not None
            and tp["spec"]["headerModifiers"]["request"]["set"][0]["secretRef"]["name"] == TEAMS["research"]
        )
    finally:
        down = engine.run("destroy", "--stack", stack, "--yes", "--non-interactive", env=env, timeout=300)
        assert down.returncode == 0, down.stdout[-3000:]
    left = cluster.api.get("Secret", TEAMS["research"], names.CREDENTIALS_NAMESPACE)
    assert left is not None and "openai" not in (left.get("data") or {}), "the team's key is removed with its stack"


# --- environments: an approval covers the environments it names ---------------------------------------


def test_an_approval_for_dev_only_is_refused_in_staging_until_promoted(engine: Engine, cluster: Cluster) -> None:
    """ledger.partner.example is approved for dev only: the staging team stack is refused at preview (the
    pack) and, without the pack, at admission; once security's approval covers staging, it goes up."""
    from components.manifests.approvals import to_output

    from .test_engine_preview import FIXTURE

    staging = load_stack(ROOT / "Pulumi.staging.yaml")

    def publish(approvals: list[Any]) -> None:
        """What the staging platform's `pulumi up` publishes: its outputs and the cluster's registry."""
        in_force = [a for a in approvals if a.covers("staging")]
        engine.set_outputs("staging", {**FIXTURE, "environment": "staging", "approvals": to_output(in_force)})
        set_registry(cluster, staging.teams, in_force)

    engine.seed_platform("staging", FIXTURE)
    publish(staging.approvals)
    doc = _example("team-payments")
    doc["config"]["egress:platformStack"] = "organization/egress/staging"
    doc["config"]["egress:destinations"] = [d for d in doc["config"]["egress:destinations"] if d["name"] == "ledger"]
    stack = "team-payments-staging"
    engine.write_stack(stack, yaml.safe_dump(doc, sort_keys=False))
    engine.init(stack)
    env = {"KUBECONFIG": str(cluster.kubeconfigs["payments"])}
    try:
        preview = engine.run("preview", "--stack", stack, "--policy-pack", "policies", "--non-interactive", env=env)
        text = preview.stdout + preview.stderr
        assert preview.returncode != 0 and "egress-approved-destinations" in text, text[-3000:]
        assert "ledger.partner.example is not approved" in text, text[-3000:]
        up = engine.run("up", "--stack", stack, "--yes", "--non-interactive", "--skip-preview", env=env, timeout=300)
        text = up.stdout + up.stderr
        assert up.returncode != 0 and "is not approved (or has expired) for team payments" in text, text[-3000:]
        assert cluster.api.get("ServiceEntry", "egress-ledger", TEAMS["payments"]) is None
        # Promotion: security adds staging to the approval; the team's stack is unchanged.
        publish([a.model_copy(update={"environments": ["dev", "staging"]}) for a in staging.approvals])
        up = engine.run("up", "--stack", stack, "--yes", "--non-interactive", "--skip-preview", env=env, timeout=300)
        assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
        assert cluster.api.get("ServiceEntry", "egress-ledger", TEAMS["payments"]) is not None
    finally:
        engine.run("destroy", "--stack", stack, "--yes", "--non-interactive", env=env, timeout=300)
        set_registry(cluster, PLATFORM.teams, PLATFORM.approvals_in_force)
    assert cluster.api.get("ServiceEntry", "egress-ledger", TEAMS["payments"]) is None


# --- Kyverno's own rights: the chart's RBAC with the platform's values -----------------------------


def _allowed(api: KubeApi, service_account: str, verb: str, api_version: str, resource: str, ns: str) -> bool:
    """The API server's RBAC decision for one of Kyverno's ServiceAccounts (a SubjectAccessReview)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{KYVERNO_NAMESPACE}:{service_account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{KYVERNO_NAMESPACE}", "system:authenticated"],
            "resourceAttributes": {
                "verb": verb,
                "group": api_version.rpartition("/")[0],
                "resource": resource,
                "namespace": ns,
            },
        },
    }
    status, body = api.request("POST", "apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    assert status == 201, body
    return bool(body["status"].get("allowed"))


def _reads(api: KubeApi) -> dict[str, bool]:
    """Whether each controller may list and watch each resource its policies read, in a team namespace."""
    ns = TEAMS["research"]
    wanted = [(SERVICE_ACCOUNT, r) for r in admission.POLICY_LISTS] + [
        (REPORTS_SERVICE_ACCOUNT, r) for r in admission.BACKGROUND_SCANS
    ]
    return {
        f"{sa} {verb} {resource}": _allowed(api, sa, verb, version, resource, ns)
        for sa, (version, resource) in wanted
        for verb in ("list", "watch")
    }


def test_kyverno_may_read_what_its_policies_read(cluster: Cluster) -> None:
    reads = _reads(cluster.api)
    assert reads and all(reads.values()), reads
    # Read only: nothing the chart values add lets Kyverno change a team's objects.
    assert not _allowed(cluster.api, SERVICE_ACCOUNT, "delete", GATEWAY_API, "httproutes", TEAMS["research"])


def test_without_the_platforms_chart_values_team_routes_are_refused(crds_dir: Path, tmp_path: Path) -> None:
    # The chart's own ClusterRoles (core and `view`-like rules) without our extraResources: the route
    # policy's resource.List calls are forbidden, so its CEL fails and Kyverno refuses every team route;
    # the reports controller cannot scan ServiceEntries.
    values = kyverno_values(Install())
    for controller in ("admissionController", "reportsController"):
        del values[controller]["rbac"]
    unfixed = chartrender.render(CHARTS_DIR / "kyverno", release="kyverno", namespace=KYVERNO_NAMESPACE, values=values)
    with platform_cluster(crds_dir, tmp_path, chart=unfixed) as bare:
        reads = _reads(bare.api)
        assert reads and not any(reads.values()), reads
        objs = team_objects("team-research")
        # The registry policy lists the routes that send to an entry, the route policy its ServiceEntries,
        # TrafficPolicies and extensions: each write is refused.
        for kind in ("ServiceEntry", "HTTPRoute"):
            obj = next(o for o in objs if o["kind"] == kind)
            out = create(bare, "research", obj)
            assert out.returncode != 0
            who = f"system:serviceaccount:{KYVERNO_NAMESPACE}:{SERVICE_ACCOUNT}"
            assert f'User "{who}" cannot list resource' in out.stderr, out.stderr
            assert bare.api.get(kind, obj["metadata"]["name"], TEAMS["research"]) is None


# --- the tenant cases, as data (tests/tenant_cases.py): each refused at admission, as the team ---------


RULES = [
    m.RULE
    for m in (approval, endpoints, routes, authorization, credentials, budgets, fail_open, tls, bounds, allowlist)
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_tenant_case_is_refused_at_admission(cluster: Cluster, case: Case) -> None:
    """The case's object, written with the team's own identity: refused with a message naming the rule,
    nothing left. A route case first gets its own (legitimate) TrafficPolicy, as a team stack makes it."""
    policy = route_policy_for(case)
    if policy is not None:
        made = create(cluster, case.team, policy)
        assert made.returncode == 0, made.stderr
    try:
        backend = TARGET if case.team == "research" else None
        refusal = refused(cluster, case.team, attempt(case, backend), case.message)
        # The refusal names its rule, the module of components/rules/ that holds it.
        assert re.search(f"egress ({'|'.join(RULES)}): [^\n]*{re.escape(case.message)}", refusal), refusal
    finally:
        if policy is not None:
            ns = policy["metadata"]["namespace"]
            kubectl(cluster, case.team, "delete", "trafficpolicy", policy["metadata"]["name"], "-n", ns)


def test_the_audit_lists_what_an_ended_approval_leaves_behind(cluster: Cluster) -> None:
    """Admitted objects stay when security ends their approval (authorization then denies their
    requests: `make sandbox`); `make audit` (python -m components.audit, platform access) names each."""
    objs = [
        o for o in team_objects("team-research") if o["kind"] in ("ServiceEntry", "HTTPRoute", "BackendConfigPolicy")
    ]
    extra = [o for o in team_objects("team-research") if o["kind"] in ("GatewayExtension", "TrafficPolicy")]
    made = [o for o in team_objects("team-research") if o in objs or o in extra]
    for obj in made:
        out = create(cluster, "research", obj)
        assert out.returncode == 0, out.stderr

    def audit() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "components.audit", "--kubeconfig", str(cluster.plane.kubeconfig)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    try:
        clean = audit()
        assert clean.returncode == 0 and clean.stdout == "", clean.stdout + clean.stderr
        expired = [
            a.model_copy(update={"expires": TODAY - dt.timedelta(days=1)}) if a.host == "api.openai.com" else a
            for a in PLATFORM.approvals
        ]
        for approvals, reason in (
            ([a for a in PLATFORM.approvals if a.host != "api.openai.com"], "not approved for team research"),
            (expired, f"expired on {(TODAY - dt.timedelta(days=1)).isoformat()}"),
        ):
            path = f"api/v1/namespaces/{names.REGISTRY_NAMESPACE}/configmaps/{names.REGISTRY_CONFIGMAP}"
            apply(cluster.api, path, admission.registry_configmap(PLATFORM.teams, approvals))
            got = audit()
            listed = {line.split("\t")[0] for line in got.stdout.splitlines() if line.endswith(reason)}
            want = {f"{o['kind']}/{TEAMS['research']}/{o['metadata']['name']}" for o in objs}
            want.add(f"ServiceEntry/{TEAMS['research']}/{TARGET}")
            assert got.returncode == 1 and listed == want, got.stdout + got.stderr
    finally:
        set_registry(cluster, PLATFORM.teams, PLATFORM.approvals)
        for obj in reversed(made):
            kubectl(
                cluster, "research", "delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", TEAMS["research"]
            )
