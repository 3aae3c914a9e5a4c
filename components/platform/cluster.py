"""The Kubernetes cluster: a kind cluster managed by the stack, or an existing one from a kubeconfig context."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ..settings.config import ConfigError


def kind_config() -> str:
    """kind cluster config: one control-plane node; kind's default CNI works with Istio ambient."""
    return "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n"


def kind_create_command(name: str, node_image: str) -> str:
    # Progress goes to stderr so that stdout is exactly the kubeconfig (kept as a secret).
    return (
        f"kind create cluster --name {name} --image {node_image} --config=- --wait 180s 1>&2 "
        f"&& kind get kubeconfig --name {name}"
    )


@dataclass(frozen=True)
class KindClusterArgs:
    name: str
    node_image: str


class KindCluster(pulumi.ComponentResource):
    """`kind create cluster` on create, `kind delete cluster` on destroy; kubeconfig is a secret."""

    def __init__(self, name: str, args: KindClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:KindCluster", name, {}, opts)
        # Imported here: only kind stacks need the command provider's plugin.
        import pulumi_command as command

        self.cluster_name = args.name
        cluster = command.local.Command(
            f"{name}-kind",
            create=kind_create_command(args.name, args.node_image),
            delete=f"kind delete cluster --name {args.name}",
            stdin=kind_config(),
            triggers=[args.name, args.node_image],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(cluster.stdout)
        self.provider = k8s.Provider(
            f"{name}-provider", kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"kubeconfig": self.kubeconfig, "clusterName": args.name})


@dataclass(frozen=True)
class ExistingClusterArgs:
    context: str = ""  # empty: the kubeconfig's current context


def read_kubeconfig(context: str = "") -> str:
    """The kubeconfig the kubernetes provider would use ($KUBECONFIG's first file, else ~/.kube/config),
    checked to hold `context` where one is named."""
    path = Path((os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]).expanduser()
    try:
        text = path.read_text()
    except OSError:
        raise ConfigError(
            f"egress:platform.cluster.mode: 'existing' needs a kubeconfig, and {path} cannot be read"
        ) from None
    if context:
        try:
            contexts = [c.get("name") for c in (yaml.safe_load(text) or {}).get("contexts") or []]
        except yaml.YAMLError:
            raise ConfigError(f"egress:platform.cluster: {path} is not a kubeconfig (not YAML)") from None
        if context not in contexts:
            known = ", ".join(str(c) for c in contexts) or "none"
            raise ConfigError(
                f"egress:platform.cluster.context: '{context}' is not a context of {path} (it has: {known})"
            )
    return text


class ExistingCluster(pulumi.ComponentResource):
    """The same outputs as KindCluster for a cluster the stack does not own."""

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        kubeconfig = read_kubeconfig(args.context)  # before registering anything: a config error
        super().__init__("egress:index:ExistingCluster", name, {}, opts)
        self.cluster_name = args.context or "current-context"
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            context=args.context or None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig, "clusterName": self.cluster_name})
