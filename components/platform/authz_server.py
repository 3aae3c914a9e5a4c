"""The Kyverno Envoy authorization server, loading the platform's two Envoy-mode policies from files.

Two ConfigMaps, two directories, two policy sources in this order: the one generic destination
policy, then the default deny (the server allows what no policy decides). What each destination
requires reaches the server with each request (the route's context), so no team writes here and
the server never needs a restart when destinations change; when the platform's teams change, the
policies' digest on the pod template rolls it.
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
    policies: Sequence[Obj]  # the policy ConfigMaps (manifests.authz.platform_configmaps), in source order
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
        self.policies = [resources.create(f"{name}-{authz.source_of(cm).role}", cm, in_ns) for cm in args.policies]
        cert = WebhookCertificate(
            f"{name}-webhook-cert", WebhookCertificateArgs(host=WEBHOOK_HOST), pulumi.ResourceOptions(parent=self)
        )

        digest = authz.policies_digest(args.policies)

        def mount(t: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
            if t.type_ == "kubernetes:apps/v1:Deployment":
                patched = authz.mount_policies(dict(t.props), digest)
            elif t.type_ == "kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration":
                patched = authz.scope_validation_webhook(dict(t.props))
            else:
                return None
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.policies, transforms=[mount]),
        )
        self.address = f"{names.AUTHZ_SERVICE}.{names.AUTHZ_NAMESPACE}.svc.cluster.local:{names.AUTHZ_GRPC_PORT}"
        self.register_outputs({"address": self.address, "chartVersion": args.chart_version})
