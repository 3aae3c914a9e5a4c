"""Kyverno (admission) and the Kyverno Envoy authorization server with its policy files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from . import authz, names, versions
from . import k8s as objects
from .helm import Chart, release


def kyverno_chart(version: str) -> Chart:
    return Chart("kyverno", version, names.KYVERNO_NAMESPACE, versions.KYVERNO_REPO)


@dataclass(frozen=True)
class KyvernoArgs:
    chart_version: str


class Kyverno(pulumi.ComponentResource):
    """Kyverno's admission controller; the release waits until its webhook is ready."""

    def __init__(self, name: str, args: KyvernoArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:Kyverno", name, {}, opts)
        self.release = release(f"{name}-release", "kyverno", kyverno_chart(args.chart_version), self)
        self.register_outputs({"chartVersion": args.chart_version, "status": self.release.status})


WEBHOOK_HOST = f"{names.AUTHZ_SERVICE}-validation.{names.AUTHZ_NAMESPACE}.svc"


def webhook_cert_command() -> str:
    """A self-signed certificate for the chart's validation webhook, as PEM key then certificate."""
    return (
        "openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN="
        + WEBHOOK_HOST
        + f" -addext subjectAltName=DNS:{WEBHOOK_HOST} -keyout /dev/stdout -out /dev/stdout 2>/dev/null"
    )


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n.*?-----END \1-----\n?", re.S)


def split_pem(pem: str) -> tuple[str, str]:
    """(certificate, private key) from the command's output."""
    blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(pem)}
    key = next((v for k, v in blocks.items() if k.endswith("PRIVATE KEY")), None)
    crt = blocks.get("CERTIFICATE")
    if key is None or crt is None:
        raise ValueError("the webhook certificate command printed no certificate and key")
    return crt, key


@dataclass(frozen=True)
class KyvernoAuthzArgs:
    chart_version: str
    teams: Sequence[str]  # whose policy ConfigMaps are mounted


class KyvernoAuthz(pulumi.ComponentResource):
    """kyverno-authz-server loading Envoy-mode policies from a mounted flat directory.

    The default-deny policy file sorts last: the server allows what no policy matches.
    """

    def __init__(self, name: str, args: KyvernoAuthzArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:KyvernoAuthz", name, {}, opts)
        import pulumi_command as command

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": names.AUTHZ_NAMESPACE, "labels": names.labels()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.default_deny = objects.create(f"{name}-default-deny", authz.default_deny_configmap(), in_ns)
        cert = command.local.Command(
            f"{name}-webhook-cert",
            create=webhook_cert_command(),
            # The key never appears in clear text: stdout, and every value derived from it, is secret.
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        parts: pulumi.Output[tuple[str, str]] = cert.stdout.apply(split_pem)
        pem: pulumi.Output[tuple[str, str]] = pulumi.Output.secret(parts)
        teams = list(args.teams)

        def mount(t: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
            if t.type_ != "kubernetes:apps/v1:Deployment":
                return None
            patched = authz.mount_policies(dict(t.props), teams)
            return None if patched is None else pulumi.ResourceTransformResult(props=patched, opts=t.opts)

        self.chart = k8s.helm.v4.Chart(
            f"{name}-server",
            chart="kyverno-authz-server",
            version=args.chart_version,
            namespace=names.AUTHZ_NAMESPACE,
            repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=versions.KYVERNO_AUTHZ_REPO),
            values=authz.chart_values(pem[0], pem[1]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.default_deny], transforms=[mount]),
        )
        self.address = f"{names.AUTHZ_SERVICE}.{names.AUTHZ_NAMESPACE}.svc.cluster.local:{names.AUTHZ_GRPC_PORT}"
        self.register_outputs({"address": self.address, "chartVersion": args.chart_version})
