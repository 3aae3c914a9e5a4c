"""Kyverno's real admission controller (cmd/kyverno, v1.19.0) out of cluster, against a local control plane.

`with KyvernoAdmission(control_plane) as kyverno:` installs what the kyverno chart installs for it (rendered
with the platform's own values by Helm in the kubernetes provider, devenv/chartrender.py): the chart's CRDs,
its ServiceAccounts, ClusterRoles, Roles and bindings, its configuration ConfigMaps. It then starts the
controller as the chart's Deployment runs it (the same arguments and environment, only ports and
addresses moved to loopback), authenticated as the chart's ServiceAccount with a TokenRequest token, never
as admin: every read the policies make is allowed or refused by the chart's RBAC in the API server. It
registers its webhooks as `url: https://127.0.0.1:<port>/...` (`--serverIP`) with its own CA; the block
waits until they answer through the API server, and stops it again (process group, SIGTERM then SIGKILL)
when the block ends, however it ends. On the way out it also removes the webhook configurations it
registered: they fail closed, and would refuse every matching write once it is gone.

The binary comes from KYVERNO_ADMISSION_BIN (scripts/build/kyverno-admission.sh prints it). Built from the
module of the pinned release; see ../shared/DESIGN.md ("Kyverno's admission controller out of cluster").
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import logging
import os
import shlex
import signal
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import chartrender, incluster
from .controlplane import (
    ControlPlane,
    ControlPlaneError,
    Terminated,
    missing_executable,
)
from .kubeapi import KubeApi, Response
from .ports import free_ports

log = logging.getLogger(__name__)

ENV_VAR = "KYVERNO_ADMISSION_BIN"
BINARY = "Kyverno's admission controller"
BUILD_HINT = "run `make tools` / scripts/build/kyverno-admission.sh"
ROOT = Path(__file__).resolve().parent.parent
# The pinned upstream charts (../shared/charts, see its SOURCES.md); the same setting the tests use.
CHARTS_DIR = Path(os.environ.get("EGRESS_CHARTS_DIR", ROOT.parent / "shared" / "charts"))
# Names as the kyverno chart (release `kyverno` in namespace `kyverno`) gives them.
NAMESPACE = "kyverno"
DEPLOYMENT = "kyverno-admission-controller"
SERVICE_ACCOUNT = "kyverno-admission-controller"
REPORTS_SERVICE_ACCOUNT = "kyverno-reports-controller"
BACKGROUND_SERVICE_ACCOUNT = "kyverno-background-controller"

# What the controller registers (pkg/config/config.go); all carry the `managed-by` label.
MANAGED_BY = "webhook.kyverno.io/managed-by=kyverno"
POLICY_WEBHOOK_CONFIG = "kyverno-policy-validating-webhook-cfg"
RESOURCE_WEBHOOK_CONFIG = "kyverno-resource-validating-webhook-cfg"
POLICY_WEBHOOK = "validate-policy.kyverno.svc"
FIELD_MANAGER = "egress-devenv"
STOP_GRACE_SECONDS = 15.0
# Set on each CRD applied: what was applied, so that a later start on the same control plane skips it.
CONTENT_ANNOTATION = "egress.corp/devenv-content-sha256"

# Policy kinds `wait_policy_ready` knows -> their collection path.
POLICY_PATHS: Mapping[str, str] = {
    "ClusterPolicy": "apis/kyverno.io/v1/clusterpolicies",
    "ValidatingPolicy": "apis/policies.kyverno.io/v1/validatingpolicies",
}

# Schema-valid but refused by Kyverno's policy webhook (two rules of one name): its denial proves that the
# webhook answers the API server's calls. Sent as a dry run only; nothing is stored.
_PROBE_RULE: dict[str, Any] = {
    "name": "probe",
    "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
    "validate": {"message": "probe", "deny": {}},
}
_PROBE_POLICY: dict[str, Any] = {
    "apiVersion": "kyverno.io/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "egress-devenv-readiness-probe"},
    "spec": {"rules": [_PROBE_RULE, _PROBE_RULE]},
}


class KyvernoAdmissionError(RuntimeError):
    """The admission controller cannot be started (missing binary, it exited, not ready in time)."""


def missing_binary() -> str | None:
    """Why the admission controller cannot start here (unset or wrong KYVERNO_ADMISSION_BIN), or None."""
    return missing_executable(ENV_VAR, BINARY, BUILD_HINT)


# --- the chart, as the platform installs it -----------------------------------------------------------


@functools.cache
def _platform_chart_json(charts_dir: Path) -> str:
    from components.platform.charts import Install
    from components.platform.kyverno import kyverno_values

    values = kyverno_values(Install())
    return json.dumps(chartrender.render(charts_dir / "kyverno", release="kyverno", namespace=NAMESPACE, values=values))


def platform_chart(charts_dir: Path | None = None) -> list[dict[str, Any]]:
    """The kyverno chart rendered with the platform's values (once per process)."""
    try:
        out: list[dict[str, Any]] = json.loads(_platform_chart_json(charts_dir or CHARTS_DIR))
    except chartrender.ChartRenderError as err:
        raise KyvernoAdmissionError(str(err)) from err
    return out


def chart_command(chart: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """(arguments, environment) of the admission controller's container, as the chart's Deployment has them."""
    try:
        return incluster.container_command(chart, DEPLOYMENT, "kyverno", NAMESPACE)
    except LookupError as err:
        raise KyvernoAdmissionError(str(err)) from err


def on_loopback(args: Sequence[str], port: int, metrics_port: int, kubeconfig: Path) -> list[str]:
    """The chart's arguments with the listeners moved to loopback and the credential given by file.

    Registers the webhooks as https://127.0.0.1:<port><path> (`--serverIP`) and issues the serving
    certificate for it; controller-runtime's metrics, on :8080 of every address in the chart, are off."""
    moved = {
        "webhookServerPort": str(port),
        "metricsPort": str(metrics_port),
        "controllerRuntimeMetricsAddress": "0",
    }
    out = []
    for arg in args:
        flag = arg.removeprefix("--").split("=", 1)[0]
        out.append(f"--{flag}={moved.pop(flag)}" if flag in moved else arg)
    out += [f"--{flag}={value}" for flag, value in moved.items()]
    return [
        *out,
        f"--kubeconfig={kubeconfig}",
        f"--serverIP=127.0.0.1:{port}",
        "--webhookServerHost=127.0.0.1",
        "--metricsHost=127.0.0.1",
        "--disableLogColor",
    ]


# --- API calls -------------------------------------------------------------------------------------------


def _must(response: Response, what: str) -> Any:
    if not 200 <= response.status < 300:
        raise KyvernoAdmissionError(f"{what}: HTTP {response.status}: {response.message}")
    return response.body


def apply(api: KubeApi, path: str, obj: Mapping[str, Any]) -> Any:
    """Server-side apply of `obj` at `path` (its item path), as field manager egress-devenv, forced."""
    query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
    response = api.call("PATCH", f"{path}?{query}", obj, content_type="application/apply-patch+yaml")
    return _must(response, f"apply {obj.get('kind')} {obj['metadata'].get('name')}")


def install_crds(api: KubeApi, crds: Sequence[Mapping[str, Any]], timeout: float = 60.0) -> None:
    """Server-side apply of the CRDs, then wait until every one applied is Established.

    A CRD whose content annotation shows it was applied with the same content already is skipped (a second
    start on the same control plane costs one metadata list instead of seconds of schema processing).
    """
    base = "apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    listed = api.call("GET", base, accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    present = {
        item["metadata"]["name"]: (item["metadata"].get("annotations") or {}).get(CONTENT_ANNOTATION)
        for item in _must(listed, "list CRDs").get("items") or []
    }
    applied = []
    for crd in crds:
        name = crd["metadata"]["name"]
        digest = hashlib.sha256(json.dumps(crd, sort_keys=True).encode()).hexdigest()
        if present.get(name) == digest:
            continue
        meta = dict(crd["metadata"])
        meta["annotations"] = {**(meta.get("annotations") or {}), CONTENT_ANNOTATION: digest}
        apply(api, f"{base}/{name}", {**crd, "metadata": meta})
        applied.append(name)
    deadline = time.monotonic() + timeout
    for name in applied:
        while True:
            obj = _must(api.call("GET", f"{base}/{name}"), f"get CRD {name}")
            if _condition(obj.get("status", {}), "Established") == "True":
                break
            if time.monotonic() > deadline:
                raise KyvernoAdmissionError(f"CRD {name} not Established within {timeout:.0f} s: {obj.get('status')}")
            time.sleep(0.1)


def _condition(status: Mapping[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def ensure_namespace(api: KubeApi, name: str) -> None:
    response = api.call(
        "POST", "api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    if response.status != 409:
        _must(response, f"create namespace {name}")


# --- policy readiness -------------------------------------------------------------------------------------


def policy_ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """(ready, why not) of a ClusterPolicy (condition Ready) or a ValidatingPolicy (conditionStatus.ready)."""
    status = obj.get("status") or {}
    if obj.get("kind") == "ClusterPolicy":
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                return condition.get("status") == "True", str(condition.get("message", ""))
        return False, "no Ready condition yet"
    conditions = status.get("conditionStatus") or {}
    not_true = [c for c in conditions.get("conditions") or [] if c.get("status") != "True"]
    if conditions.get("ready") is True and not not_true:
        return True, ""
    reasons = "; ".join(f"{c.get('type')}: {c.get('message')}" for c in not_true)
    return False, reasons or "not ready yet"


def wait_policy_ready(
    api: KubeApi,
    name: str,
    *,
    kind: str = "ClusterPolicy",
    timeout: float = 60.0,
    admission: KyvernoAdmission | None = None,
) -> dict[str, Any]:
    """Waits until Kyverno reports the policy ready (its webhook configured); returns the policy.

    `kind` is ClusterPolicy or ValidatingPolicy. With `admission`, a controller that exits meanwhile is
    reported at once, with its log; on timeout the error carries the policy's last status.
    """
    if kind not in POLICY_PATHS:
        raise ValueError(f"unknown policy kind {kind}; known: {', '.join(POLICY_PATHS)}")
    path = f"{POLICY_PATHS[kind]}/{name}"
    deadline = time.monotonic() + timeout
    why = "not found"
    while True:
        if admission is not None:
            admission.check()
        response = api.call("GET", path)
        if response.status == 200:
            ready, why = policy_ready(response.body)
            if ready:
                out: dict[str, Any] = response.body
                return out
        elif response.status != 404:
            why = f"HTTP {response.status}: {response.message}"
        if time.monotonic() > deadline:
            tail = f"; last lines of the controller's log:\n{admission.tail()}" if admission is not None else ""
            raise KyvernoAdmissionError(f"{kind} {name} not ready within {timeout:.0f} s ({why}){tail}")
        time.sleep(0.2)


# --- signals -------------------------------------------------------------------------------------------

# --- the admission controller -------------------------------------------------------------------------


class KyvernoAdmission(incluster.Component):
    """Kyverno's admission controller against `control_plane` (started), on a free loopback port.

    `chart` is the rendered kyverno chart whose objects and Deployment it installs and runs (default: the
    platform's, `platform_chart()`); a test passes another rendering to see what other values would do.
    The controller's credential is a token of the chart's ServiceAccount. Its leader-election identity is
    fixed, so a controller started after another one stopped on the same control plane leads at once; two
    at the same time on one control plane are not supported.
    """

    NAME = "kyverno"
    WHAT = "the admission controller"
    Error = KyvernoAdmissionError
    ENV_VAR, BINARY, BUILD_HINT = ENV_VAR, BINARY, BUILD_HINT
    STOP_GRACE_SECONDS = STOP_GRACE_SECONDS

    def __init__(
        self,
        control_plane: ControlPlane,
        *,
        chart: Sequence[Mapping[str, Any]] | None = None,
        timeout: float = 180.0,
        charts_dir: Path | None = None,
        binary: Path | None = None,
        extra_args: Sequence[str] = (),
        keep_workdir: bool = False,
    ) -> None:
        super().__init__(control_plane, timeout=timeout, keep_workdir=keep_workdir, binary=binary)
        self.chart = list(chart) if chart is not None else None
        self.charts_dir = charts_dir
        self.extra_args = list(extra_args)
        self._port = 0

    @property
    def url(self) -> str:
        """Where the webhooks are served (what `--serverIP` registers)."""
        return f"https://127.0.0.1:{self._port}"

    def _launch(self, binary: Path, workdir: Path) -> None:
        chart = self.chart if self.chart is not None else platform_chart(self.charts_dir)
        self._install(chart)
        kubeconfig = self.control_plane.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)
        self._port, metrics_port = free_ports(2)
        args, chart_env = chart_command(chart)
        argv = [str(binary), *on_loopback(args, self._port, metrics_port, kubeconfig), *self.extra_args]
        self._spawn_controller(argv, chart_env, kubeconfig)
        self._wait_ready()
        log.info("kyverno admission controller ready at %s", self.url)

    def _cleanup(self) -> None:
        self._remove_webhooks()

    # -- internals ----------------------------------------------------------------------------------
    def _install(self, chart: Sequence[Mapping[str, Any]]) -> None:
        api = self.api
        install_crds(api, [o for o in chart if o.get("kind") == "CustomResourceDefinition"])
        ensure_namespace(api, NAMESPACE)
        incluster.install(api, chart, apply)
        self._wait("the chart's aggregated ClusterRoles", lambda: incluster.aggregated(api, chart))

    def _wait_ready(self) -> None:
        api = self.api
        ca_bundle: list[bytes] = []

        def registered() -> tuple[bool, str]:
            response = api.call(
                "GET", f"apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations?{_selector()}"
            )
            if response.status != 200:
                return False, f"HTTP {response.status}: {response.message}"
            configs = {item["metadata"]["name"]: item for item in response.body.get("items", [])}
            for name in (POLICY_WEBHOOK_CONFIG, RESOURCE_WEBHOOK_CONFIG):
                if name not in configs:
                    return False, f"{name} not registered (have: {', '.join(sorted(configs)) or 'none'})"
            for name, config in configs.items():
                for hook in config.get("webhooks") or []:
                    client = hook.get("clientConfig", {})
                    if not str(client.get("url", "")).startswith(f"{self.url}/") or not client.get("caBundle"):
                        return False, f"{name}/{hook.get('name')} does not point at {self.url} yet: {client.get('url')}"
            hooks = configs[POLICY_WEBHOOK_CONFIG].get("webhooks") or []
            if not hooks:
                return False, f"{POLICY_WEBHOOK_CONFIG} has no webhooks yet"
            ca_bundle[:] = [base64.b64decode(hooks[0]["clientConfig"]["caBundle"])]
            return True, ""

        self._wait("validating webhook configurations registered", registered)

        def serving() -> tuple[bool, str]:
            # The serving certificate must verify against the registered CA for 127.0.0.1 (as the API server checks it).
            context = ssl.create_default_context(cadata=ca_bundle[0].decode())
            request = urllib.request.Request(f"{self.url}/health/readiness")
            try:
                with urllib.request.urlopen(request, context=context, timeout=3) as response:
                    return int(response.status) == 200, f"HTTP {response.status}"
            except urllib.error.HTTPError as err:
                return False, f"HTTP {err.code}"
            except OSError as err:
                return False, str(err)

        self._wait("webhook server serving with the registered CA", serving)

        def answers() -> tuple[bool, str]:
            response = api.call("POST", "apis/kyverno.io/v1/clusterpolicies?dryRun=All", _PROBE_POLICY)
            return f'admission webhook "{POLICY_WEBHOOK}" denied the request' in response.message, (
                f"HTTP {response.status}: {response.message}"
            )

        self._wait(f"the API server's calls to {POLICY_WEBHOOK} answered", answers)

    def _remove_webhooks(self) -> None:
        """Deletes the webhook configurations that call this controller (they fail closed once it is gone).

        Only those with a webhook at this controller's URL: another controller's are left alone. Best
        effort: the control plane may already be gone.
        """
        try:
            api = self.api
            for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
                base = f"apis/admissionregistration.k8s.io/v1/{kind}"
                listed = api.call("GET", f"{base}?{_selector()}", timeout=10)
                if listed.status != 200:
                    log.warning("could not list Kyverno's %s: HTTP %s %s", kind, listed.status, listed.message)
                    continue
                for name in _calling(listed.body.get("items") or [], self.url):
                    response = api.call("DELETE", f"{base}/{name}", timeout=10)
                    if response.status not in (200, 404):
                        log.warning("could not remove %s %s: HTTP %s %s", kind, name, response.status, response.message)
        except (OSError, ControlPlaneError) as err:
            log.debug("Kyverno's webhook configurations not removed: %s", err)


def _calling(configs: Sequence[Mapping[str, Any]], url: str) -> list[str]:
    """Names of the webhook configurations with a webhook that calls `url`."""
    return [
        config["metadata"]["name"]
        for config in configs
        if any(
            str(hook.get("clientConfig", {}).get("url", "")).startswith(f"{url}/")
            for hook in config.get("webhooks") or []
        )
    ]


def _selector() -> str:
    return urllib.parse.urlencode({"labelSelector": MANAGED_BY})


# --- CLI -----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.kyverno_admission",
        description="Start a local control plane with Kyverno's admission controller until Ctrl-C or SIGTERM. "
        f"Binaries from KUBE_APISERVER_BIN, KUBE_CONTROLLER_MANAGER_BIN, ETCD_BIN and {ENV_VAR}.",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness (default 180)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories (logs) after stopping")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every process started")
    parser.add_argument(
        "--chart",
        type=Path,
        help="the rendered kyverno chart as a JSON list of objects (default: rendered with the platform's values)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="kyverno-admission: %(message)s",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        chart = json.loads(args.chart.read_text()) if args.chart else None
    except (OSError, ValueError) as err:
        log.error("--chart %s: %s", args.chart, err)
        return 2
    try:
        with (
            ControlPlane(keep_workdir=args.keep) as plane,
            KyvernoAdmission(plane, chart=chart, timeout=args.timeout, keep_workdir=args.keep) as kyverno,
        ):
            print(f"export KUBECONFIG={shlex.quote(str(plane.kubeconfig))}", flush=True)
            log.info("webhooks at %s; log %s; Ctrl-C or SIGTERM stops it", kyverno.url, kyverno.log_file)
            while True:
                plane.check()
                kyverno.check()
                time.sleep(0.5)
    except (KeyboardInterrupt, Terminated):
        log.info("stopped")
        return 0
    except (ControlPlaneError, KyvernoAdmissionError) as err:
        log.error("%s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
