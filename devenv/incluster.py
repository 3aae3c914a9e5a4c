"""What a chart gives a controller in the cluster, laid out for the same controller run out of cluster.

The chart is rendered by Helm with the platform's values (devenv/chartrender.py). From it come the
controller's identity and rights (ServiceAccounts, ClusterRoles, Roles, their bindings), its configuration
ConfigMaps, and how its Deployment runs it (container arguments and environment, ConfigMap volumes).
The process then authenticates with a TokenRequest token of that ServiceAccount
(ControlPlane.service_account_kubeconfig): what it may read or write is what the chart's RBAC grants.
Used by devenv/kyverno_admission.py and devenv/istiod.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from .controlplane import ControlPlane, ControlPlaneError, Supervised, missing_executable
from .kubeapi import KubeApi

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
# What of a rendered chart is installed for a controller run out of cluster: its identities and their
# rights, and its configuration. (CRDs go in first, through install_crds; workloads never: the process
# here stands for them.)
IDENTITY_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap")


def install(api: KubeApi, chart: Sequence[Obj], apply: Callable[[KubeApi, str, Obj], Any]) -> None:
    """Applies the chart's identities, rights and configuration (IDENTITY_KINDS), in the chart's order."""
    for obj in chart:
        if obj.get("kind") in IDENTITY_KINDS:
            apply(api, api.item_path(dict(obj)), obj)


def aggregated(api: KubeApi, chart: Sequence[Obj]) -> tuple[bool, str]:
    """(all filled, which not) for the chart's aggregated ClusterRoles: they have no rules until the
    controller manager's clusterrole-aggregation controller fills them in."""
    for role in chart:
        if role.get("kind") == "ClusterRole" and role.get("aggregationRule"):
            got = api.get("ClusterRole", role["metadata"]["name"])
            if not (got or {}).get("rules"):
                return False, f"ClusterRole {role['metadata']['name']} not aggregated yet"
    return True, ""


def deployment(chart: Sequence[Obj], name: str) -> Obj:
    for obj in chart:
        if obj.get("kind") == "Deployment" and obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"the rendered chart has no Deployment {name}")


def container_command(
    chart: Sequence[Obj], deployment_name: str, container_name: str, namespace: str
) -> tuple[list[str], dict[str, str]]:
    """(arguments, environment) of one container of the chart's Deployment, as the kubelet would give
    them: downward-API fields of the pod (namespace, name, ServiceAccount) filled in, resource fields
    (GOMAXPROCS from limits.cpu) left out."""
    pod = deployment(chart, deployment_name)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    fields = {
        "metadata.namespace": namespace,
        "metadata.name": f"{deployment_name}-local",
        "spec.serviceAccountName": str(pod.get("serviceAccountName", "default")),
    }
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "fieldRef" in (var.get("valueFrom") or {}):
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return [str(a) for a in container.get("args") or []], env


def configmap_mounts(
    chart: Sequence[Obj], deployment_name: str, container_name: str, root: Path, keys: Sequence[str] | None = None
) -> list[Path]:
    """Writes the container's ConfigMap volumes (from the chart's ConfigMaps) under `root`, each at its
    mount path made relative (`/etc/istio/config` -> root/etc/istio/config), as the kubelet mounts them."""
    pod = deployment(chart, deployment_name)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    configmaps = {o["metadata"]["name"]: o for o in chart if o.get("kind") == "ConfigMap"}
    volumes = {v["name"]: v["configMap"]["name"] for v in pod.get("volumes") or [] if "configMap" in v}
    written = []
    for mount in container.get("volumeMounts") or []:
        source = configmaps.get(volumes.get(mount["name"], ""))
        if source is None:
            continue
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for key, value in (source.get("data") or {}).items():
            if keys is None or key in keys:
                (target / key).write_text(value)
                written.append(target / key)
    return written


class Component(Supervised):
    """One upstream controller run out of cluster against a started ControlPlane: its work directory, its
    one process (own process group, dies with the thread that started it), readiness waits bounded by
    `timeout` from the start, and a stop (SIGTERM, then SIGKILL) however the block ends: the lifecycle of
    controlplane.Supervised. Subclasses say what to install and launch (`_launch`) and what to undo after
    the process (`_cleanup`)."""

    NAME = "component"  # its process, log file (<NAME>.log) and work directory prefix
    WHAT = "the component"  # in messages
    Error: type[RuntimeError] = RuntimeError
    STOP_GRACE_SECONDS = 15.0
    ENV_VAR = ""  # the variable naming its binary (`binary` overrides it)
    BINARY = "its binary"  # what that binary is, in messages
    BUILD_HINT = ""  # how to get the binary
    poll_interval = 0.25

    def __init__(
        self, control_plane: ControlPlane, *, timeout: float, keep_workdir: bool, binary: Path | None = None
    ) -> None:
        super().__init__(timeout=timeout, keep_workdir=keep_workdir)
        self.control_plane = control_plane
        self._binary = binary
        self.what, self.error = self.WHAT, self.Error
        self.workdir_prefix, self.stop_grace = f"{self.NAME}-", self.STOP_GRACE_SECONDS

    @property
    def api(self) -> KubeApi:
        """Admin access to the control plane's API server (to set up and to check, never the process's)."""
        return self.control_plane.api

    @property
    def pid(self) -> int:
        """Process id (also after it stopped); 0 before it started."""
        return self._pids.get(self.NAME, 0)

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.NAME}.log"

    def tail(self, lines: int = 40) -> str:
        return self._processes[0].tail(lines) if self._processes else "(not started)"

    def start(self) -> Self:
        try:
            return super().start()
        except ControlPlaneError as err:  # a wait of the control plane's, within ours
            raise self.Error(str(err)) from err

    def _prepare(self) -> None:
        self._binary = self._binary_path()
        try:
            self.control_plane.check()
        except ControlPlaneError as err:
            raise self.Error(f"the control plane is not running: {err}") from err

    def _start(self, workdir: Path) -> None:
        assert self._binary is not None
        self._launch(self._binary, workdir)

    def _stopped(self) -> None:
        self._cleanup()

    def _spawn_controller(self, argv: Sequence[str], chart_env: Mapping[str, str], kubeconfig: Path) -> None:
        """Starts the process with the chart's environment and `kubeconfig` as its only credential (no
        in-cluster guess from KUBERNETES_* variables; a chart's own KUBECONFIG points into a mounted Secret)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.update(chart_env)
        env["KUBECONFIG"] = str(kubeconfig)
        self._spawn(self.NAME, argv, self.workdir, env)

    # -- what a subclass provides --------------------------------------------------------------------
    def _binary_path(self) -> Path:
        if self._binary is not None:
            return self._binary
        reason = missing_executable(self.ENV_VAR, self.BINARY, self.BUILD_HINT)
        if reason is not None:
            raise self.Error(reason)
        return Path(os.environ[self.ENV_VAR])

    def _launch(self, binary: Path, workdir: Path) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """After the process stopped: remove what only it served (its webhooks, which fail closed)."""
