"""A team stack: its namespace and destinations on the platform named by `egress:platformStack`."""

from __future__ import annotations

import datetime as dt
import os

import pulumi
import pulumi_kubernetes as k8s

from . import approvals as registry
from .config import ConfigError, StackConfig
from .egress import TeamEgress, TeamEgressArgs

RENDER_DIR_ENV = "EGRESS_RENDER_DIR"
RENDER_STACK_SUFFIX = "-render"


def build(cfg: StackConfig, today: dt.date) -> TeamEgress | None:
    assert cfg.platform_stack is not None
    # GitOps mode (`make render`): the provider writes manifests to this directory instead of
    # applying them; the objects are exactly those `pulumi up` would create.
    render_dir = os.environ.get(RENDER_DIR_ENV)
    if pulumi.get_stack().endswith(RENDER_STACK_SUFFIX) and not render_dir:
        # A render companion stack must never apply to the cluster.
        raise ConfigError(
            f"{pulumi.get_stack()}: render stacks run only through `make render` ({RENDER_DIR_ENV} unset)"
        )
    if cfg.team is None:
        return None
    platform = pulumi.StackReference("platform", stack_name=cfg.platform_stack)
    if render_dir:
        provider = k8s.Provider("platform-cluster", render_yaml_to_directory=render_dir)
    else:
        provider = k8s.Provider("platform-cluster", kubeconfig=platform.require_output("kubeconfig"))
    approvals = platform.get_output("approvals").apply(registry.from_output)
    team = TeamEgress(
        f"team-{cfg.team.name}",
        TeamEgressArgs(team=cfg.team, destinations=cfg.destinations, approvals=approvals, today=today),
        pulumi.ResourceOptions(provider=provider),
    )
    pulumi.export("namespace", cfg.team.namespace)
    pulumi.export("gatewayAddress", platform.get_output("gatewayAddress"))
    pulumi.export("destinations", {d.name: p.approved for d, p in zip(cfg.destinations, team.paths, strict=True)})
    return team
