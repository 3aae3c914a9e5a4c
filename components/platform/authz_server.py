"""The Kyverno Envoy authorization server, loading Envoy-mode policies from a mounted flat directory.

The default-deny policy file sorts last: the server allows what no policy matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .. import resources
from ..manifests import authz
from ..manifests.kinds import Obj
from ..settings import names, versions
from .charts import Chart, Install, locate
from .webhook_cert import WebhookCertificate, WebhookCertificateArgs

WEBHOOK_HOST = f"{names.AUTHZ_SERVICE}-validation.{names.AUTHZ_NAMESPACE}.svc"


def authz_chart(version: str) -> Chart:
    return Chart("kyverno-authz-server", version, names.AUTHZ_NAMESPACE, versions.KYVERNO_AUTHZ_REPO)


@dataclass(frozen=True)
class KyvernoAuthzArgs:
    chart_version: str
    default_deny: Obj  # the default-deny ConfigMap (manifests.authz.default_deny_configmap)
    teams: Sequence[str]  # whose policy ConfigMaps are mounted
    install: Install = field(default_factory=Install)


class KyvernoAuthz(pulumi.ComponentResource):
    def __init__(self, name: str, args: KyvernoAuthzArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:KyvernoAuthz", name, {}, opts)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": names.AUTHZ_NAMESPACE, "labels": names.labels()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.default_deny = resources.create(f"{name}-default-deny", args.default_deny, in_ns)
        cert = WebhookCertificate(
            f"{name}-webhook-cert", WebhookCertificateArgs(host=WEBHOOK_HOST), pulumi.ResourceOptions(parent=self)
        )
        teams = list(args.teams)

        def mount(t: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
            if t.type_ != "kubernetes:apps/v1:Deployment":
                return None
            patched = authz.mount_policies(dict(t.props), teams)
            return None if patched is None else pulumi.ResourceTransformResult(props=patched, opts=t.opts)

        chart = authz_chart(args.chart_version)
        ref, repo = locate(chart, args.install.sources)
        self.chart = k8s.helm.v4.Chart(
            f"{name}-server",
            chart=ref,
            version=chart.version,
            namespace=chart.namespace,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=repo) if repo else None,
            # Secret in the values too, whatever the engine does with the outputs of a dynamic resource.
            values=authz.chart_values(pulumi.Output.secret(cert.crt), pulumi.Output.secret(cert.key)),
            skip_await=not args.install.wait_for_ready,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.default_deny], transforms=[mount]),
        )
        self.address = f"{names.AUTHZ_SERVICE}.{names.AUTHZ_NAMESPACE}.svc.cluster.local:{names.AUTHZ_GRPC_PORT}"
        self.register_outputs({"address": self.address, "chartVersion": args.chart_version})
