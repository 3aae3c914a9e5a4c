"""kgateway: its CRDs, then the controller with Istio integration (routes to ServiceEntries)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from ..settings import names, versions
from .charts import Chart, Install, release


def kgateway_charts(version: str) -> dict[str, Chart]:
    """kgateway-crds, then kgateway; Istio integration is what lets routes target ServiceEntries."""
    ns = names.KGATEWAY_NAMESPACE
    prefix = versions.KGATEWAY_CHART_PREFIX
    return {
        "crds": Chart("kgateway-crds", version, ns, prefix),
        "controller": Chart(
            "kgateway", version, ns, prefix, {"controller": {"extraEnv": {"KGW_ENABLE_ISTIO_INTEGRATION": "true"}}}
        ),
    }


@dataclass(frozen=True)
class KgatewayArgs:
    version: str
    # The controller watches Gateway API and Istio types: their CRDs must exist first.
    needs: tuple[pulumi.Resource, ...] = ()
    install: Install = field(default_factory=Install)


class Kgateway(pulumi.ComponentResource):
    def __init__(self, name: str, args: KgatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:Kgateway", name, {}, opts)
        charts = kgateway_charts(args.version)
        self.crds = release(f"{name}-crds", "kgateway-crds", charts["crds"], args.install, self)
        self.controller = release(
            f"{name}-controller", "kgateway", charts["controller"], args.install, self, [self.crds, *args.needs]
        )
        self.register_outputs({"version": args.version, "controllerStatus": self.controller.status})
