"""The platform stack role: cluster, mesh, gateway, Kyverno, authz server, admission policy, Ollama, demo team."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import pulumi

from ..manifests import admission as admission_manifests
from ..manifests import approvals as registry
from ..manifests.stack import registry_addresses, stack_objects
from ..settings import names, versions
from ..settings.config import ConfigError, PlatformConfig, StackConfig, TeamEntry
from ..settings.names import RENDER_DIR_ENV
from ..team.egress import Needs, TeamEgress, TeamEgressArgs, credential_values
from .admission import AdmissionPolicy, AdmissionPolicyArgs
from .authz_server import KyvernoAuthz, KyvernoAuthzArgs
from .charts import Install
from .cluster import ExistingCluster, ExistingClusterArgs, KindCluster, KindClusterArgs
from .egress_gateway import EgressGateway, EgressGatewayArgs
from .gateway_api import GatewayApiArgs, GatewayApiCrds
from .istio import IstioAmbient, IstioArgs
from .kgateway import Kgateway, KgatewayArgs
from .kyverno import Kyverno, KyvernoArgs
from .ollama import OllamaArgs, OllamaContainer
from .tenants import Tenants, TenantsArgs


def _cluster(p: PlatformConfig, pins: versions.Pins) -> KindCluster | ExistingCluster:
    if p.cluster.mode == "kind":
        return KindCluster("cluster", KindClusterArgs(name=p.cluster.name, node_image=pins.kind_node_image))
    return ExistingCluster("cluster", ExistingClusterArgs(context=p.cluster.context))


def try_commands(cfg: StackConfig, context: str, ollama_container: str | None) -> dict[str, str]:
    """Commands a person runs to try the path: allowed, denied, retries, and the access log."""
    if cfg.team is None or not cfg.destinations:
        return {}
    d = cfg.destinations[0]
    # Every required header (there may be none: the team's identity alone), from a pod of the team.
    headers = "".join(f" -H '{h}: {values[0]}'" for h, values in sorted(d.authz.require_headers.items()))
    curl = (
        f"kubectl --context {context} -n {{ns}} run egress-try --rm -i --restart=Never "
        f"--image={versions.CURL_IMAGE} -- curl -sS -i -H 'Host: {d.host}'"
    )
    # The team's own listener: only its namespace may connect to that port (ztunnel).
    port = next(t.port for t in cfg.teams if t.name == cfg.team.name)
    url = f"http://{names.gateway_address()}:{port}/"
    own = curl.format(ns=cfg.team.namespace)
    out = {
        "allowed": f"{own}{headers} {url}",
        # Without the headers (403 from authorization), or (identity alone) from a pod outside the
        # team's namespace: ztunnel refuses the connection to the team's port (curl fails, no HTTP reply).
        "denied": f"{own} {url}" if headers else f"{curl.format(ns='default')} {url}",
        "accessLog": (
            f"kubectl --context {context} -n {names.GATEWAY_NAMESPACE} logs deploy/{names.GATEWAY_NAME} --tail=20"
        ),
    }
    if ollama_container:
        out["retries"] = f"docker pause {ollama_container} && {out['allowed']}; docker unpause {ollama_container}"
    return out


@dataclass(frozen=True)
class Platform:
    """The platform's components (tests walk them to check the graph)."""

    cluster: KindCluster | ExistingCluster
    gateway_api: GatewayApiCrds
    istio: IstioAmbient
    kgateway: Kgateway
    kyverno: Kyverno
    authz: KyvernoAuthz
    gateway: EgressGateway
    admission: AdmissionPolicy
    ollama: OllamaContainer | None
    tenants: Tenants
    team: TeamEgress | None


def build(cfg: StackConfig, today: dt.date) -> Platform:
    assert cfg.platform is not None
    if os.environ.get(RENDER_DIR_ENV):
        raise ConfigError(
            "make render: the platform stack installs Helm releases, which cannot be rendered to files; "
            "render team stacks"
        )
    p = cfg.platform
    pins = p.versions
    install = Install(sources=p.sources, wait_for_ready=p.wait_for_ready)
    cluster = _cluster(p, pins)
    on_cluster = pulumi.ResourceOptions(provider=cluster.provider)

    ollama = None
    addresses: dict[str, list[pulumi.Input[str]]] = {}
    if p.ollama.enabled:
        ollama = OllamaContainer(
            "ollama", OllamaArgs(image=pins.ollama_image), pulumi.ResourceOptions(depends_on=[cluster])
        )
        addresses[p.ollama.destination] = [ollama.address]
    objects = stack_objects(cfg, today, addresses=addresses)

    gateway_api = GatewayApiCrds(
        "gateway-api", GatewayApiArgs(version=pins.gateway_api, manifest=p.sources.gateway_api_manifest), on_cluster
    )
    istio = IstioAmbient("istio", IstioArgs(version=pins.istio, install=install), on_cluster)
    kgateway = Kgateway(
        "kgateway",
        KgatewayArgs(version=pins.kgateway, needs=(gateway_api, istio.base), install=install),
        on_cluster,
    )
    kyverno = Kyverno("kyverno", KyvernoArgs(chart_version=pins.kyverno_chart, install=install), on_cluster)
    authz = KyvernoAuthz(
        "kyverno-authz",
        KyvernoAuthzArgs(chart_version=pins.kyverno_authz_chart, policies=objects.authz, install=install),
        on_cluster,
    )
    gateway = EgressGateway(
        "egress-gateway",
        EgressGatewayArgs(
            objects=objects.gateway,
            gateway_crds=(gateway_api, kgateway.controller),
            kgateway_crds=kgateway.crds,
            mesh_ready=tuple(istio.ready),
            istio_crds=tuple(istio.crds_and_webhook),
            wait=install.wait_for_ready,
        ),
        on_cluster,
    )
    cluster_policy, registry_policy, route_policy, retention_policy, registry_now = objects.admission
    registry_cm: pulumi.Input[dict[str, Any]] = registry_now
    if addresses:
        # The Ollama container's address is approved where it is known: at deploy time.
        # from_input resolves the Outputs nested in the mapping.
        found: pulumi.Output[dict[str, list[str]]] = pulumi.Output.from_input(addresses)  # type: ignore[arg-type]
        registry_cm = found.apply(
            lambda f: admission_manifests.registry_configmap(
                cfg.teams, cfg.approvals_in_force, registry_addresses(cfg, f)
            )
        )
    admission = AdmissionPolicy(
        "egress-admission",
        AdmissionPolicyArgs(
            cluster_policy=cluster_policy,
            registry_policy=registry_policy,
            route_policy=route_policy,
            retention_policy=retention_policy,
            registry=registry_cm,
            kyverno=kyverno.release,
            wait=install.wait_for_ready,
        ),
        on_cluster,
    )
    tenants = Tenants(
        "tenants",
        TenantsArgs(
            namespaces=objects.tenants_namespace,
            teams=objects.tenants,
            mesh_ready=istio.ready,
            gateway_api=gateway_api,
            authz_namespace=authz.namespace,
            enforcing=[*admission.enforcing, gateway.gateway],
        ),
        on_cluster,
    )

    team = None
    if objects.team is not None:
        ns = tenants.namespaces[objects.team.team.name]
        needs: Needs = {
            "ServiceEntry": [*istio.crds_and_webhook, admission.policy, admission.registry_policy, ns],
            "HTTPRoute": [gateway_api, admission.route_policy, ns],
            "GatewayExtension": [kgateway.crds, admission.route_policy, ns],
            "TrafficPolicy": [kgateway.crds, admission.route_policy, ns],
            "BackendConfigPolicy": [kgateway.crds, admission.route_policy, ns],
            "Secret": [tenants.credentials[objects.team.team.name]],
        }
        team_args = TeamEgressArgs(objects=objects.team, needs=needs, credential_values=credential_values(cfg))
        team = TeamEgress(f"team-{objects.team.team.name}", team_args, on_cluster)

    context = (
        f"kind-{p.cluster.name}"
        if p.cluster.mode == "kind"
        else (p.cluster.context or "$(kubectl config current-context)")
    )
    # No credential is exported: team stacks read these outputs. Each team's identity is fetched by
    # the platform's own pipeline (`make team-kubeconfig`) and handed to that team's CI only.
    pulumi.export("teams", {t.name: team_record(t) for t in cfg.teams})
    pulumi.export("gatewayAddress", gateway.address)
    pulumi.export("authzAddress", authz.address)
    pulumi.export("approvals", registry.to_output(cfg.approvals_in_force))
    pulumi.export("environment", p.environment)
    commands = try_commands(cfg, context, ollama.container_name if ollama else None)
    pulumi.export("tryCommands", gateway.address.apply(lambda _: commands))  # once the gateway is programmed
    if ollama is not None:
        pulumi.export("ollamaAddress", ollama.address)
    return Platform(cluster, gateway_api, istio, kgateway, kyverno, authz, gateway, admission, ollama, tenants, team)


def team_record(team: TeamEntry) -> dict[str, str | int]:
    """What the platform tells everyone about a team: its namespace, the identity its stack uses, and
    the gateway port its workloads call (its own listener)."""
    return {
        "namespace": team.namespace,
        "identity": f"{names.TENANTS_NAMESPACE}/{names.team_identity(team.name)}",
        "port": team.port,
    }
