"""The Gateway API standard-channel CRDs from the pinned release manifest (or its mirror)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ..settings import versions


@dataclass(frozen=True)
class GatewayApiArgs:
    version: str
    manifest: str | None = None  # a mirror's URL or a local path; None: the upstream release


class GatewayApiCrds(pulumi.ComponentResource):
    def __init__(self, name: str, args: GatewayApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:GatewayApiCrds", name, {}, opts)
        self.url = args.manifest or versions.Pins(gateway_api=args.version).gateway_api_crds_url()
        self.crds = k8s.yaml.v2.ConfigFile(f"{name}-standard", file=self.url, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"url": self.url, "version": args.version})
