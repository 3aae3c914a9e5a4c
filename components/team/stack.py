"""The team stack role: a team's namespace and destinations on the platform named by `egress:platformStack`."""

from __future__ import annotations

import datetime as dt
import os

import pulumi
import pulumi_kubernetes as k8s

from ..manifests import approvals as registry
from ..manifests.stack import team_objects
from ..settings.config import ConfigError, StackConfig, check_team_stack_name
from ..settings.names import RENDER_DIR_ENV, RENDER_STACK_SUFFIX
from .egress import TeamEgress, TeamEgressArgs, credential_values


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
    check_team_stack_name(pulumi.get_stack(), cfg.platform_stack)
    if cfg.team is None:
        return None
    team = cfg.team
    platform = pulumi.StackReference("platform", stack_name=cfg.platform_stack)
    if render_dir:
        # kubeconfig="" keeps the provider from reading KUBECONFIG from the user's environment,
        # which it refuses next to renderYamlToDirectory.
        provider = k8s.Provider("platform-cluster", render_yaml_to_directory=render_dir, kubeconfig="")
    else:
        # The team's own identity (`make team-kubeconfig`, handed to the team's CI by the platform),
        # from KUBECONFIG or `kubernetes:kubeconfig`: the platform exports no credential.
        provider = k8s.Provider("platform-cluster")
    # The registry arrives as an Output; it decides only the approval marks, never which objects
    # exist, so the resources are laid out from the list without it and take their bodies from the
    # same list built once the registry is known.
    approvals = platform.get_output("approvals").apply(registry.from_output)
    objects = team_objects(team, cfg.destinations, [], today)
    resolved = approvals.apply(lambda regs: team_objects(team, cfg.destinations, regs, today))
    values = None if render_dir else credential_values(cfg)
    egress = TeamEgress(
        f"team-{team.name}",
        TeamEgressArgs(objects=objects, resolved=resolved, credential_values=values),
        pulumi.ResourceOptions(provider=provider),
    )
    pulumi.export("namespace", team.namespace)
    pulumi.export("gatewayAddress", platform.get_output("gatewayAddress"))
    # The team's own listener on the gateway: its workloads call http://<gatewayAddress>:<gatewayPort>/.
    pulumi.export(
        "gatewayPort", platform.get_output("teams").apply(lambda teams: (teams or {}).get(team.name, {}).get("port"))
    )
    pulumi.export("destinations", {d: p.approved for d, p in egress.paths.items()})
    return egress
