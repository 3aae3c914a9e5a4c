"""The dev stack's resource graph under mocks: pins, parents, dependency edges and outputs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from components.manifests import authz
from components.platform import stack as platform
from components.settings import config, names, versions
from components.settings.stackfile import load_stack

from . import mockgraph
from .conftest import ROOT, TODAY

SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
GRAPH = mockgraph.Graph()


def _build(check: Callable[[mockgraph.Graph], None], raw: dict[str, Any] | None = None) -> pulumi.Output[None]:
    GRAPH.nodes.clear()
    mockgraph.install(GRAPH)  # other modules install their own mocks; take the runtime back
    cfg = config.parse(raw) if raw is not None else load_stack(ROOT / "Pulumi.dev.yaml")
    built = platform.build(cfg, TODAY)
    urns = [r.urn for r in mockgraph.resources(built)]
    return pulumi.Output.all(*urns).apply(lambda _: check(GRAPH))


DEV_TEAMS = ("ml", "research", "payments")

# Provider-implemented components: resources of the plan like any other.
REMOTE_COMPONENTS = {"kubernetes:yaml/v2:ConfigFile", "kubernetes:helm.sh/v4:Chart"}

# Every explicit or implicit dependency the dev stack should have, and no other. The kubernetes
# provider is an implicit dependency of every Kubernetes object and is checked separately.
EXPECTED_DEPS: dict[str, set[str]] = {
    "cluster-kind": set(),
    "cluster-provider": {"cluster-kind"},
    "gateway-api-standard": set(),
    "istio-base": set(),
    "istio-istiod": {"istio-base"},
    "istio-cni": {"istio-base"},
    "istio-ztunnel": {"istio-base"},
    "kgateway-crds": set(),
    "kgateway-controller": {"kgateway-crds", "gateway-api-standard", "istio-base"},
    "kyverno-release": set(),
    "kyverno-authz-namespace": set(),
    "kyverno-authz-approval-policy": {"kyverno-authz-namespace"},
    "kyverno-authz-destination-policy": {"kyverno-authz-namespace"},
    "kyverno-authz-default-deny": {"kyverno-authz-namespace"},
    "kyverno-authz-webhook-cert": set(),
    "kyverno-authz-server": {
        "kyverno-authz-approval-policy",
        "kyverno-authz-destination-policy",
        "kyverno-authz-default-deny",
        "kyverno-authz-webhook-cert",
    },
    "egress-gateway-namespace": {"istio-istiod", "istio-cni", "istio-ztunnel"},
    "egress-gateway-gateway": {
        "egress-gateway-namespace",
        "gateway-api-standard",
        "kgateway-controller",
        "egress-gateway-peerauthentication-egress-gateway-strict-mtls",
        "egress-gateway-authorizationpolicy-egress-gateway-team-ports",
    },
    **{
        f"egress-gateway-{kind}-{name}": {"egress-gateway-namespace", "istio-base", "istio-istiod"}
        for kind, name in (
            ("peerauthentication", "egress-gateway-strict-mtls"),
            ("authorizationpolicy", "egress-gateway-team-ports"),
        )
    },
    **{f"egress-gateway-listeners-{t}": {"egress-gateway-namespace", "gateway-api-standard"} for t in DEV_TEAMS},
    "egress-gateway-access-log": {"egress-gateway-namespace", "kgateway-crds"},
    "egress-admission-clusterpolicy": {"kyverno-release"},
    # The registry admission reads carries the Ollama container's address (approved at deploy time).
    "egress-admission-registry": {"kyverno-release", "ollama-container"},
    "egress-admission-validatingpolicy": {"kyverno-release", "egress-admission-registry"},
    "ollama-image": set(),
    "ollama-models": set(),
    "ollama-container": {"ollama-image", "ollama-models"},
    "egress-admission-route-policy": {"kyverno-release", "egress-admission-registry"},
    "egress-admission-retention-policy": {"kyverno-release", "egress-admission-registry"},
    "tenants-identities-namespace": set(),
    "tenants-credentials-namespace": set(),
    # The demo team writes its credentials into the Secret the platform made for it.
    "team-ml-credentials": {"tenants-ml-secret-credentials"},
    # The demo team's objects wait for its namespace, which the platform's Tenants hold.
    "team-ml-ollama-serviceentry": {
        "tenants-ml-namespace",
        "istio-base",
        "istio-istiod",
        "egress-admission-clusterpolicy",
        "egress-admission-validatingpolicy",
        "ollama-container",  # its STATIC endpoint is the container's address
    },
    # A route waits for its TrafficPolicy and its ServiceEntry: admission admits it only once both exist.
    "team-ml-ollama-httproute": {
        "tenants-ml-namespace",
        "gateway-api-standard",
        "egress-admission-route-policy",
        "team-ml-ollama-trafficpolicy",
        "team-ml-ollama-serviceentry",
    },
    "team-ml-ollama-gatewayextension": {"tenants-ml-namespace", "kgateway-crds", "egress-admission-route-policy"},
    "team-ml-ollama-trafficpolicy": {"tenants-ml-namespace", "kgateway-crds", "egress-admission-route-policy"},
}

ENFORCING = {
    "egress-admission-clusterpolicy",
    "egress-admission-validatingpolicy",
    "egress-admission-route-policy",
    "egress-admission-retention-policy",
    "egress-gateway-gateway",
}

# Every team of the registry: its namespace after the mesh, the rest in it; its identity in the
# platform's namespace of identities.
for _team in DEV_TEAMS:
    _ns = f"tenants-{_team}-namespace"
    EXPECTED_DEPS.update(
        {
            _ns: {"istio-istiod", "istio-cni", "istio-ztunnel"},
            f"tenants-{_team}-networkpolicy": {_ns},
            f"tenants-{_team}-referencegrant": {"gateway-api-standard", "kyverno-authz-namespace"},
            # A team's identity only once every admission policy is enforcing and the Gateway is up.
            f"tenants-{_team}-serviceaccount": {"tenants-identities-namespace", *ENFORCING},
            f"tenants-{_team}-secret": {"tenants-identities-namespace", f"tenants-{_team}-serviceaccount"},
            f"tenants-{_team}-role": {_ns},
            f"tenants-{_team}-rolebinding": {_ns},
            f"tenants-{_team}-secret-credentials": {"tenants-credentials-namespace"},
            f"tenants-{_team}-role-credentials": {"tenants-credentials-namespace"},
            f"tenants-{_team}-rolebinding-credentials": {"tenants-credentials-namespace"},
            f"tenants-{_team}-referencegrant-credentials": {"tenants-credentials-namespace", "gateway-api-standard"},
        }
    )


@pulumi.runtime.test
def test_dependency_edges_are_exactly_the_real_ones() -> pulumi.Output[None]:
    def check(g: mockgraph.Graph) -> None:
        custom = {n.name for n in g.nodes.values() if n.custom or n.type in REMOTE_COMPONENTS}
        assert custom == set(EXPECTED_DEPS), sorted(custom ^ set(EXPECTED_DEPS))
        for name, expected in EXPECTED_DEPS.items():
            assert g.deps(name) == expected, f"{name}: {sorted(g.deps(name))} != {sorted(expected)}"

    return _build(check)


def longest_chain(g: mockgraph.Graph) -> list[str]:
    """Longest path of dependent waits (edges: explicit/implicit deps plus the cluster provider)."""
    edges = {name: set(EXPECTED_DEPS[name]) for name in EXPECTED_DEPS}
    for n in g.nodes.values():
        if (n.custom or n.type in REMOTE_COMPONENTS) and n.type.startswith("kubernetes:"):
            edges[n.name].add("cluster-provider")
    memo: dict[str, list[str]] = {}

    def chain(name: str) -> list[str]:
        if name not in memo:
            memo[name] = [*max((chain(d) for d in edges[name]), key=len, default=[]), name]
        return memo[name]

    return max((chain(n) for n in edges), key=len)


@pulumi.runtime.test
def test_longest_chain_is_nine_waits_ending_with_the_gateway_then_a_team_identity() -> pulumi.Output[None]:
    def check(g: mockgraph.Graph) -> None:
        path = longest_chain(g)
        # kind -> provider -> Istio CRDs -> ztunnel/cni/istiod ready -> enrolled namespace -> ztunnel's policy
        # on the gateway's pods -> the Gateway (programmed) -> a team's identity -> its token: no team can
        # write before the gateway and every admission policy are up (Kyverno's branch is shorter).
        assert len(path) == 9, path
        assert path[:2] == ["cluster-kind", "cluster-provider"], path
        assert path[5] in (
            "egress-gateway-authorizationpolicy-egress-gateway-team-ports",
            "egress-gateway-peerauthentication-egress-gateway-strict-mtls",
        ), path
        assert path[6] == "egress-gateway-gateway", path
        assert path[7:] in ([f"tenants-{t}-serviceaccount", f"tenants-{t}-secret"] for t in DEV_TEAMS), path

    return _build(check)


@pulumi.runtime.test
def test_every_child_is_parented_by_its_component() -> pulumi.Output[None]:
    expected_parent = {
        "cluster-kind": "cluster",
        "cluster-provider": "cluster",
        "gateway-api-standard": "gateway-api",
        "istio-base": "istio",
        "kgateway-controller": "kgateway",
        "kyverno-release": "kyverno",
        "kyverno-authz-server": "kyverno-authz",
        "egress-gateway-gateway": "egress-gateway",
        "egress-admission-clusterpolicy": "egress-admission",
        "ollama-container": "ollama",
        "team-ml-ollama": "team-ml",
        "tenants-ml-namespace": "tenants",
        "tenants-ml-rolebinding": "tenants",
        "team-ml-ollama-serviceentry": "team-ml-ollama",
    }

    def check(g: mockgraph.Graph) -> None:
        for child, parent in expected_parent.items():
            assert g.parent(child) == parent, (child, g.parent(child))
        top = {n.name for n in g.nodes.values() if g.parent(n.name) == ""}
        assert top == {
            "cluster",
            "gateway-api",
            "istio",
            "kgateway",
            "kyverno",
            "kyverno-authz",
            "egress-gateway",
            "egress-admission",
            "ollama",
            "tenants",
            "team-ml",
        }

    return _build(check)


@pulumi.runtime.test
def test_charts_images_and_crd_bundle_are_pinned_as_in_the_design() -> pulumi.Output[None]:
    def check(g: mockgraph.Graph) -> None:
        releases = {n.name: n.inputs for n in g.of_type("kubernetes:helm.sh/v3:Release")}
        got = {
            name: (i["chart"], i["version"], i.get("repositoryOpts", {}).get("repo")) for name, i in releases.items()
        }
        assert got == {
            "istio-base": ("base", "1.30.3", versions.ISTIO_REPO),
            "istio-istiod": ("istiod", "1.30.3", versions.ISTIO_REPO),
            "istio-cni": ("cni", "1.30.3", versions.ISTIO_REPO),
            "istio-ztunnel": ("ztunnel", "1.30.3", versions.ISTIO_REPO),
            "kgateway-crds": ("oci://cr.kgateway.dev/kgateway-dev/charts/kgateway-crds", "v2.4.3", None),
            "kgateway-controller": ("oci://cr.kgateway.dev/kgateway-dev/charts/kgateway", "v2.4.3", None),
            "kyverno-release": ("kyverno", "3.9.0", "https://kyverno.github.io/kyverno/"),
        }
        assert releases["istio-istiod"]["values"] == {"profile": "ambient"}
        assert releases["istio-cni"]["values"] == {"profile": "ambient"}
        assert releases["kgateway-controller"]["values"]["controller"]["extraEnv"] == {
            "KGW_ENABLE_ISTIO_INTEGRATION": "true"
        }
        chart = g.nodes["kyverno-authz-server"].inputs
        assert (chart["chart"], chart["version"]) == ("kyverno-authz-server", "0.4.0")
        # The webhook's private key is in the values: the whole values object must be a secret.
        assert chart["values"].get(SECRET_SIG) == SECRET_VALUE
        assert chart["values"]["value"]["config"]["sources"] == {
            "kube": False,
            "external": [
                f"file://{authz.APPROVAL_DIR}",
                f"file://{names.AUTHZ_POLICY_DIR}",
                f"file://{authz.DEFAULT_DENY_DIR}",
            ],
        }
        assert g.nodes["gateway-api-standard"].inputs["file"] == (
            "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml"
        )
        assert g.nodes["ollama-image"].inputs["name"] == "ollama/ollama:0.12.6"
        assert "--image kindest/node:v1.34.0" in g.nodes["cluster-kind"].inputs["create"]

    return _build(check)


@pulumi.runtime.test
def test_ollama_destination_uses_the_container_address_and_registry_approval() -> pulumi.Output[None]:
    def check(g: mockgraph.Graph) -> None:
        se = g.nodes["team-ml-ollama-serviceentry"].inputs
        assert se["spec"]["resolution"] == "STATIC"
        assert se["spec"]["endpoints"] == [{"address": "172.18.0.9"}]
        assert se["metadata"]["labels"][names.APPROVED_LABEL] == names.APPROVED_VALUE
        assert se["metadata"]["annotations"][names.TICKET_ANNOTATION] == "SEC-1001"
        ns = g.nodes["tenants-ml-namespace"].inputs
        assert ns["metadata"]["labels"][names.AMBIENT_LABEL] == "ambient"
        container = g.nodes["ollama-container"].inputs
        assert "OLLAMA_HOST=0.0.0.0:11434" in container["envs"]
        assert container["networksAdvanced"] == [{"name": "kind"}]
        assert not container.get("ports"), "no host port: the cluster reaches it on the kind network"

    return _build(check)


@pulumi.runtime.test
def test_existing_mode_uses_a_context_and_no_kind(tmp_path_factory: Any = None) -> pulumi.Output[None]:
    import os
    import tempfile

    kubeconfig = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)  # noqa: SIM115
    kubeconfig.write(mockgraph.KUBECONFIG)
    kubeconfig.close()
    os.environ["KUBECONFIG"] = kubeconfig.name
    raw = {"platform": {"cluster": {"mode": "existing", "context": "prod-east"}, "ollama": {"enabled": False}}}

    def check(g: mockgraph.Graph) -> None:
        os.environ.pop("KUBECONFIG", None)
        assert "cluster-kind" not in g.nodes
        assert not g.of_type("docker:index/container:Container")
        assert g.nodes["cluster-provider"].inputs["context"] == "prod-east"
        assert not any(n.name.startswith("team-") for n in g.nodes.values())

    return _build(check, raw)


def test_a_context_the_kubeconfig_lacks_is_one_clear_error(tmp_path: Any, monkeypatch: Any) -> None:
    from components.platform.cluster import read_kubeconfig
    from components.settings.config import ConfigError

    path = tmp_path / "kubeconfig"
    path.write_text(mockgraph.KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert "prod-east" in read_kubeconfig("prod-east")
    with pytest.raises(
        ConfigError, match=r"cluster.context: 'egress-staging' is not a context of .* \(it has: prod-east\)"
    ):
        read_kubeconfig("egress-staging")


def test_platform_outputs_name_what_a_person_uses() -> None:
    cfg = load_stack(ROOT / "Pulumi.dev.yaml")
    cmds = platform.try_commands(cfg, "kind-egress-dev", "egress-ollama")
    assert set(cmds) == {"allowed", "denied", "retries", "accessLog"}
    assert "-H 'x-force-authorized: true'" in cmds["allowed"]
    assert "x-force-authorized" not in cmds["denied"]
    assert cmds["retries"].startswith("docker pause egress-ollama && ")
    assert f"http://{names.gateway_address()}:10001/" in cmds["allowed"]  # the team's own listener


def test_authz_deployment_gets_one_directory_per_policy_source_default_deny_last() -> None:
    deployment = {
        "kind": "Deployment",
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/component": "authz-server"}},
                "spec": {"containers": [{"name": "server"}]},
            }
        },
    }
    patched = authz.mount_policies(deployment, "digest-1")
    assert patched is not None
    # The policies' digest on the pod template: a changed policy file (a team added) rolls the server.
    assert patched["spec"]["template"]["metadata"]["annotations"] == {authz.POLICIES_DIGEST_ANNOTATION: "digest-1"}
    pod = patched["spec"]["template"]["spec"]
    assert [v["configMap"]["name"] for v in pod["volumes"]] == [
        authz.APPROVAL_CONFIGMAP,
        "egress-authz-policy",
        "egress-authz-default",
    ]
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]]
    assert mounts == [authz.APPROVAL_DIR, names.AUTHZ_POLICY_DIR, authz.DEFAULT_DENY_DIR]
    external = authz.chart_values("crt", "key")["config"]["sources"]["external"]
    assert external == [f"file://{d}" for d in mounts]  # the server evaluates sources in flag order
    other = {"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"app": "webhook"}}}}}
    assert authz.mount_policies(other, "digest-1") is None
    one, two = ({10001: "team-ml"}, {10001: "team-ml", 10002: "team-research"})
    assert authz.policies_digest(authz.platform_configmaps(one)) != authz.policies_digest(
        authz.platform_configmaps(two)
    )
    # An approval revoked by security changes the approval policy's file, and so rolls the server too.
    platform = load_stack(ROOT / "Pulumi.dev.yaml")
    grants = authz.approval_grants(platform.teams, platform.approvals)
    revoked = authz.approval_grants(platform.teams, platform.approvals[1:])
    assert grants != revoked
    assert authz.policies_digest(authz.platform_configmaps(two, grants)) != authz.policies_digest(
        authz.platform_configmaps(two, revoked)
    )


def test_approval_grants_are_each_namespaces_own() -> None:
    """The registry as authorization holds it: each team's namespace maps to the hosts approved for that
    team, at the end of the approval's last day (UTC), in the policy's CEL literal too."""
    platform = load_stack(ROOT / "Pulumi.dev.yaml")
    grants = authz.approval_grants(platform.teams, platform.approvals)
    assert grants == {
        "team-ml": {"ollama.external": "2027-06-30T23:59:59Z"},
        "team-research": {"api.openai.com": "2027-06-30T23:59:59Z"},
        "team-payments": {
            "models.partner.example": "2027-03-31T23:59:59Z",
            "ledger.partner.example": "2027-03-31T23:59:59Z",
        },
    }
    (literal,) = [v["expression"] for v in authz.approval_policy(grants)["spec"]["variables"] if v["name"] == "grants"]
    assert json.loads(literal) == grants  # the CEL map literal reads as the same map


@pytest.mark.parametrize("kind_name", ["egress-dev"])
def test_kind_command_creates_and_deletes_the_named_cluster(kind_name: str) -> None:
    from components.platform.cluster import kind_create_command

    cmd = kind_create_command(kind_name, versions.KIND_NODE_IMAGE)
    assert cmd.startswith(f"kind create cluster --name {kind_name} --image {versions.KIND_NODE_IMAGE}")
    assert cmd.endswith(f"kind get kubeconfig --name {kind_name}")


def test_today_is_a_date() -> None:
    assert isinstance(TODAY, dt.date)


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="needs openssl")
def test_webhook_certificate_is_a_real_certificate_and_key_for_the_webhook_host() -> None:
    import subprocess

    from components.platform.authz_server import WEBHOOK_HOST
    from components.platform.webhook_cert import is_certificate_and_key, openssl_self_signed

    crt, key = openssl_self_signed(WEBHOOK_HOST, days=1)
    assert is_certificate_and_key(crt, key)
    assert not is_certificate_and_key(crt, "")
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"], input=crt, capture_output=True, text=True, check=True
    ).stdout
    assert f"DNS:{WEBHOOK_HOST}" in text


def test_the_authz_charts_webhook_judges_envoy_mode_policies_only() -> None:
    config = {"kind": "ValidatingWebhookConfiguration", "webhooks": [{"name": "a"}, {"name": "b"}]}
    scoped = authz.scope_validation_webhook(config)
    assert [h["matchConditions"] for h in scoped["webhooks"]] == [[authz.ENVOY_MODE_ONLY]] * 2
    assert "matchConditions" not in config["webhooks"][0]  # the chart's object is not modified in place
