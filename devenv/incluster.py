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
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .controlplane import (
    ControlPlane,
    ControlPlaneError,
    Process,
    activate,
    deactivate,
    missing_executable,
    poll,
    signals_deferred,
    spawn,
)
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


_C = TypeVar("_C", bound="Component")


class Component:
    """One upstream controller run out of cluster against a started ControlPlane: its work directory, its
    one process (controlplane.spawn: own process group, dies with the thread that started it), readiness
    waits bounded by `timeout` from the start, and a stop (SIGTERM, then SIGKILL) however the block ends.
    Subclasses say what to install and launch (`_launch`) and what to undo after the process (`_cleanup`)."""

    NAME = "component"  # its process, log file (<NAME>.log) and work directory prefix
    WHAT = "the component"  # in messages
    Error: type[RuntimeError] = RuntimeError
    STOP_GRACE_SECONDS = 15.0
    ENV_VAR = ""  # the variable naming its binary (`binary` overrides it)
    BINARY = "its binary"  # what that binary is, in messages
    BUILD_HINT = ""  # how to get the binary

    def __init__(
        self, control_plane: ControlPlane, *, timeout: float, keep_workdir: bool, binary: Path | None = None
    ) -> None:
        self.control_plane = control_plane
        self._binary = binary
        self.timeout = timeout
        self.keep_workdir = keep_workdir
        self._process: Process | None = None
        self._workdir: Path | None = None
        self._pid = 0
        self._started_at = 0.0
        self.startup_seconds = 0.0

    @property
    def api(self) -> KubeApi:
        """Admin access to the control plane's API server (to set up and to check, never the process's)."""
        return self.control_plane.api

    @property
    def pid(self) -> int:
        """Process id (also after it stopped); 0 before it started."""
        return self._pid

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise self.Error(f"{self.WHAT} is not started")
        return self._workdir

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.NAME}.log"

    def tail(self, lines: int = 40) -> str:
        return self._process.tail(lines) if self._process is not None else "(not started)"

    def __enter__(self: _C) -> _C:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self: _C) -> _C:
        if self._workdir is not None:
            raise self.Error(f"{self.WHAT} is already started")
        binary = self._binary_path()
        try:
            self.control_plane.check()
        except ControlPlaneError as err:
            raise self.Error(f"the control plane is not running: {err}") from err
        self._started_at = time.monotonic()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.NAME}-"))
        activate(self)
        try:
            self._launch(binary, self._workdir)
        except ControlPlaneError as err:
            self.stop()
            raise self.Error(str(err)) from err
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - self._started_at
        return self

    def stop(self) -> None:
        """Stops the process and undoes what only it served (`_cleanup`); idempotent."""
        with signals_deferred():
            if self._process is not None:
                self._process.stop(self.STOP_GRACE_SECONDS)
                self._process = None
                self._cleanup()
            deactivate(self)
            if self._workdir is not None:
                if self.keep_workdir:
                    log.info("kept %s's work dir %s", self.WHAT, self._workdir)
                else:
                    shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def check(self) -> None:
        """Raises the component's error if its process has exited."""
        proc = self._process
        if proc is not None and proc.popen.poll() is not None:
            raise self.Error(proc.describe_exit())

    def _spawn(self, argv: Sequence[str], chart_env: Mapping[str, str], kubeconfig: Path) -> None:
        """Starts the process with the chart's environment and `kubeconfig` as its only credential (no
        in-cluster guess from KUBERNETES_* variables; a chart's own KUBECONFIG points into a mounted Secret)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.update(chart_env)
        env["KUBECONFIG"] = str(kubeconfig)
        self._process = spawn(self.NAME, argv, self.workdir, env)
        self._pid = self._process.popen.pid

    def _wait(self, what: str, ready: Callable[[], tuple[bool, str]]) -> None:
        ok, last = poll(ready, self._started_at + self.timeout, self.check, 0.25)
        if not ok:
            raise self.Error(
                f"{what} not within {self.timeout:.0f} s (last: {last.strip()[:400]}); "
                f"last lines of {self.log_file}:\n{self.tail()}"
            )

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
