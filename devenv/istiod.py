"""istiod (pilot-discovery) out of cluster, against a local control plane, as the istiod chart runs it.

`with Istiod(control_plane) as istiod:` installs what the platform's `base` and `istiod` charts install for
it (rendered by Helm with the platform's values, devenv/chartrender.py): Istio's CRDs, istiod's ServiceAccount,
ClusterRoles, Roles and bindings, its mesh and injector ConfigMaps (also written where the Deployment mounts
them), and both validating webhook configurations. It starts pilot-discovery with the Deployment's arguments
and environment (ambient on: PILOT_ENABLE_AMBIENT, REVISION=default), authenticated as the chart's
ServiceAccount, never admin, its listeners moved to free loopback ports. The webhooks point at its HTTPS
port by URL (no Service reaches a loopback process) with a throwaway CA of our own, which istiod is given
with --caCertFile/--tlsCertFile/--tlsKeyFile. istiod's own webhook controller then does what it does in a
cluster: it patches the CA bundle in and, once a dry run of an invalid Gateway is denied through the API
server, switches the failure policy to Fail; the block waits for that, so every Istio object written from
then on is judged by istiod (pkg/webhooks/validation/controller/controller.go,
isDryRunOfInvalidConfigRejected and updateValidatingWebhookConfiguration).

`authorizations()` asks istiod over xDS what ztunnel would receive: a Delta ADS stream on the plaintext
xDS port, node id `ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`, a wildcard subscription to
`type.googleapis.com/istio.security.Authorization`; that is how pilot's own test reads it
(pilot/pkg/xds/workload_test.go, TestWorkloadAuthorizationPolicy: ConnectDeltaADS().WithType(
WorkloadAuthorizationType).WithNodeType(model.Ztunnel), ResourceNamesSubscribe ["*"]).

The binary comes from PILOT_DISCOVERY_BIN (scripts/build/istio.sh). It is built from the module proxy's
`istio.io/istio` snapshot of master near 1.30 (the proxy serves no 1.30.3 module; see that script), while the
charts are 1.30.3.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import queue
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format  # type: ignore[import-untyped]

from . import chartrender, incluster
from .controlplane import (
    ControlPlane,
    ControlPlaneError,
    http_get,
    missing_executable,
)
from .kyverno_admission import CHARTS_DIR, apply, ensure_namespace, install_crds
from .ports import free_ports
from .protodesc import BOOL, BYTES, MESSAGE, STRING, UINT32, Schema

log = logging.getLogger(__name__)

ENV_VAR = "PILOT_DISCOVERY_BIN"
BINARY = "istiod's pilot-discovery"
BUILD_HINT = "run `make tools` / scripts/build/istio.sh"
NAMESPACE = "istio-system"
DEPLOYMENT = "istiod"
SERVICE_ACCOUNT = "istiod"
CONTAINER = "discovery"
# Both charts' validating webhooks: base's for objects of any revision, istiod's for `istio.io/rev: default`.
VALIDATORS = ("istiod-default-validator", "istio-validator-istio-system")
WEBHOOK_PATH = "/validate"
WEBHOOK_CONFIGS = "apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
STOP_GRACE_SECONDS = 15.0
AUTHORIZATION_TYPE = "type.googleapis.com/istio.security.Authorization"  # pkg/model/xds.go
DELTA_ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
ZTUNNEL_NODE = "ztunnel~127.0.0.1~ztunnel-local.istio-system~istio-system.svc.cluster.local"


class IstiodError(RuntimeError):
    """istiod cannot be started or asked (missing binary, it exited, not ready in time)."""


def missing_binary() -> str | None:
    return missing_executable(ENV_VAR, BINARY, BUILD_HINT)


# --- the charts, as the platform installs them --------------------------------------------------------


@functools.cache
def _platform_charts_json(charts_dir: Path) -> str:
    from components.platform.istio import istio_charts
    from components.settings import versions

    charts = istio_charts(versions.ISTIO_VERSION)
    out = []
    for release, key in (("istio-base", "base"), ("istiod", "istiod")):  # the platform's release names
        chart = charts[key]
        out += chartrender.render(charts_dir / chart.name, release=release, namespace=NAMESPACE, values=chart.values)
    return json.dumps(out)


def platform_charts(charts_dir: Path | None = None) -> list[dict[str, Any]]:
    """The base and istiod charts rendered with the platform's values (once per process)."""
    try:
        out: list[dict[str, Any]] = json.loads(_platform_charts_json(charts_dir or CHARTS_DIR))
    except chartrender.ChartRenderError as err:
        raise IstiodError(str(err)) from err
    return out


def _serving_cert(workdir: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key): a throwaway CA and a certificate for 127.0.0.1, where the API server calls."""
    ca_key, ca, key, cert = (workdir / n for n in ("ca.key", "ca.crt", "tls.key", "tls.crt"))
    san = ["-addext", "subjectAltName=IP:127.0.0.1,DNS:istiod.istio-system.svc"]
    new = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    steps = [
        [*new, "-keyout", ca_key, "-out", ca, "-subj", "/CN=egress-devenv istiod CA"],
        [*new, "-keyout", key, "-out", cert, "-CA", ca, "-CAkey", ca_key, "-subj", "/CN=istiod.istio-system.svc", *san],
    ]
    for step in steps:
        done = subprocess.run(["openssl", *map(str, step)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise IstiodError(f"openssl {step[0]} failed: {done.stderr.strip()}")
    return ca, cert, key


# --- the xDS messages ztunnel reads ---------------------------------------------------------------------


def _schema() -> Schema:
    s = Schema("egress.devenv.xds")
    # envoy/config/core/v3/base.proto, envoy/service/discovery/v3/discovery.proto, google/protobuf/any.proto
    s.message("Node", [("id", 1, STRING, None, False)])
    s.message("Any", [("type_url", 1, STRING, None, False), ("value", 2, BYTES, None, False)])
    s.message(
        "DeltaDiscoveryRequest",
        [
            ("node", 1, MESSAGE, "Node", False),
            ("type_url", 2, STRING, None, False),
            ("resource_names_subscribe", 3, STRING, None, True),
            ("response_nonce", 6, STRING, None, False),
        ],
    )
    s.message(
        "Resource",
        [("version", 1, STRING, None, False), ("resource", 2, MESSAGE, "Any", False), ("name", 3, STRING, None, False)],
    )
    s.message(
        "DeltaDiscoveryResponse",
        [
            ("resources", 2, MESSAGE, "Resource", True),
            ("type_url", 4, STRING, None, False),
            ("nonce", 5, STRING, None, False),
            ("removed_resources", 6, STRING, None, True),
        ],
    )
    # istio pkg/workloadapi/security/authorization.proto (package istio.security); enums as their numbers.
    s.message("Empty", [])  # google/protobuf/empty.proto
    s.message(
        "StringMatch",
        [
            ("exact", 1, STRING, None, False),
            ("prefix", 2, STRING, None, False),
            ("suffix", 3, STRING, None, False),
            ("presence", 4, MESSAGE, "Empty", False),
        ],
    )
    s.message("Address", [("address", 1, BYTES, None, False), ("length", 2, UINT32, None, False)])
    s.message(
        "Match",
        [
            ("namespaces", 1, MESSAGE, "StringMatch", True),
            ("not_namespaces", 2, MESSAGE, "StringMatch", True),
            ("principals", 3, MESSAGE, "StringMatch", True),
            ("not_principals", 4, MESSAGE, "StringMatch", True),
            ("source_ips", 5, MESSAGE, "Address", True),
            ("not_source_ips", 6, MESSAGE, "Address", True),
            ("destination_ips", 7, MESSAGE, "Address", True),
            ("not_destination_ips", 8, MESSAGE, "Address", True),
            ("destination_ports", 9, UINT32, None, True),
            ("not_destination_ports", 10, UINT32, None, True),
        ],
    )
    s.message("Rules", [("matches", 2, MESSAGE, "Match", True)])
    s.message("Group", [("rules", 1, MESSAGE, "Rules", True)])
    s.message(
        "Authorization",
        [
            ("name", 1, STRING, None, False),
            ("namespace", 2, STRING, None, False),
            ("scope", 3, UINT32, None, False),  # enum Scope: GLOBAL 0, NAMESPACE 1, WORKLOAD_SELECTOR 2
            ("action", 4, UINT32, None, False),  # enum Action: ALLOW 0, DENY 1
            ("groups", 5, MESSAGE, "Group", True),
            ("dry_run", 6, BOOL, None, False),
        ],
    )
    return s


DeltaDiscoveryRequest, DeltaDiscoveryResponse, Authorization = _schema().classes(
    "DeltaDiscoveryRequest", "DeltaDiscoveryResponse", "Authorization"
)
SCOPES = {0: "GLOBAL", 1: "NAMESPACE", 2: "WORKLOAD_SELECTOR"}
ACTIONS = {0: "ALLOW", 1: "DENY"}


def _authorization(value: bytes) -> dict[str, Any]:
    msg = Authorization.FromString(value)
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    out["scope"], out["action"] = SCOPES[msg.scope], ACTIONS[msg.action]
    return out


# --- istiod -------------------------------------------------------------------------------------------


class Istiod(incluster.Component):
    """pilot-discovery against `control_plane` (started), on free loopback ports, as the istiod chart runs it."""

    NAME = "istiod"
    WHAT = "istiod"
    Error = IstiodError
    ENV_VAR, BINARY, BUILD_HINT = ENV_VAR, BINARY, BUILD_HINT
    STOP_GRACE_SECONDS = STOP_GRACE_SECONDS

    def __init__(
        self,
        control_plane: ControlPlane,
        *,
        charts: Sequence[Mapping[str, Any]] | None = None,
        timeout: float = 180.0,
        binary: Path | None = None,
        keep_workdir: bool = False,
    ) -> None:
        super().__init__(control_plane, timeout=timeout, keep_workdir=keep_workdir, binary=binary)
        self.charts = list(charts) if charts is not None else None
        self.ports: dict[str, int] = {}

    @property
    def xds_address(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['https']}{WEBHOOK_PATH}"

    def _launch(self, binary: Path, workdir: Path) -> None:
        charts = self.charts if self.charts is not None else platform_charts()
        self._install(charts, workdir)
        kubeconfig = self.control_plane.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)
        self._spawn_istiod(binary, charts, kubeconfig)
        self._wait_ready()
        log.info("istiod ready (xDS %s, webhook %s)", self.xds_address, self.webhook_url)

    def _cleanup(self) -> None:
        """The validating webhooks that call it: they would fail closed."""
        for name in VALIDATORS:
            try:
                self.api.request(
                    "DELETE", f"apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}"
                )
            except (OSError, ControlPlaneError) as err:
                log.debug("webhook %s not removed: %s", name, err)

    # -- internals ---------------------------------------------------------------------------------
    def _install(self, charts: Sequence[Mapping[str, Any]], workdir: Path) -> None:
        api = self.api
        install_crds(api, [o for o in charts if o.get("kind") == "CustomResourceDefinition"])
        ensure_namespace(api, NAMESPACE)
        incluster.install(api, charts, apply)
        # Where the Deployment mounts them: ./etc/istio/config (mesh) and ./var/lib/istio/inject, which
        # are pilot-discovery's own defaults relative to its working directory (pilot-discovery/app/cmd.go).
        incluster.configmap_mounts(charts, DEPLOYMENT, CONTAINER, workdir)
        self.ports = dict(zip(("http", "grpc", "secure_grpc", "https", "monitoring"), free_ports(5), strict=True))
        self._ca, self._cert, self._key = _serving_cert(workdir)
        ca_bundle = base64.b64encode(self._ca.read_bytes()).decode()
        for hook_config in charts:
            if hook_config.get("kind") == "ValidatingWebhookConfiguration":
                obj = json.loads(json.dumps(hook_config))
                for hook in obj["webhooks"]:
                    hook["clientConfig"] = {"url": self.webhook_url, "caBundle": ca_bundle}
                path = f"{WEBHOOK_CONFIGS}/{obj['metadata']['name']}"
                apply(api, path, obj)

    def _spawn_istiod(self, binary: Path, charts: Sequence[Mapping[str, Any]], kubeconfig: Path) -> None:
        args, chart_env = incluster.container_command(charts, DEPLOYMENT, CONTAINER, NAMESPACE)
        loopback = {
            "monitoringAddr": f"127.0.0.1:{self.ports['monitoring']}",
            "httpAddr": f"127.0.0.1:{self.ports['http']}",
            "grpcAddr": f"127.0.0.1:{self.ports['grpc']}",
            "secureGRPCAddr": f"127.0.0.1:{self.ports['secure_grpc']}",
            "httpsAddr": f"127.0.0.1:{self.ports['https']}",
            "kubeconfig": str(kubeconfig),
            "caCertFile": str(self._ca),
            "tlsCertFile": str(self._cert),
            "tlsKeyFile": str(self._key),
        }
        kept = [a for a in args if a.removeprefix("--").split("=", 1)[0] not in loopback]
        argv = [str(binary), *kept, *(f"--{flag}={value}" for flag, value in loopback.items())]
        self._spawn_controller(argv, chart_env, kubeconfig)

    def _wait_ready(self) -> None:
        def ready() -> tuple[bool, str]:
            status, body = http_get(f"http://127.0.0.1:{self.ports['http']}/ready")
            return status == 200, body

        self._wait("istiod's /ready", ready)

        def fail_closed() -> tuple[bool, str]:
            got = self.api.get("ValidatingWebhookConfiguration", VALIDATORS[0]) or {}
            policies = [h.get("failurePolicy") for h in got.get("webhooks") or []]
            return bool(policies) and all(p == "Fail" for p in policies), f"failurePolicy {policies}"

        self._wait(f"{VALIDATORS[0]} switched to Fail by istiod", fail_closed)

    # -- xDS ---------------------------------------------------------------------------------------
    def authorizations(self, *, expect: Sequence[str] = (), timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """What istiod sends ztunnel as `istio.security.Authorization`, by resource name (`<ns>/<name>`).

        Reads responses (ACKing each, as ztunnel does) until every name in `expect` has arrived."""
        requests: queue.Queue[Any] = queue.Queue()
        first = DeltaDiscoveryRequest(type_url=AUTHORIZATION_TYPE, resource_names_subscribe=["*"])
        first.node.id = ZTUNNEL_NODE
        requests.put(first)

        def outgoing() -> Iterator[Any]:
            while (item := requests.get()) is not None:
                yield item

        got: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.xds_address) as channel:
            call = channel.stream_stream(
                DELTA_ADS,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=DeltaDiscoveryResponse.FromString,
            )
            responses = call(outgoing(), timeout=timeout)
            try:
                for response in responses:
                    for resource in response.resources:
                        got[resource.name] = _authorization(resource.resource.value)
                    for name in response.removed_resources:
                        got.pop(name, None)
                    requests.put(DeltaDiscoveryRequest(type_url=AUTHORIZATION_TYPE, response_nonce=response.nonce))
                    if all(name in got for name in expect) or time.monotonic() > deadline:
                        break
            finally:
                requests.put(None)
                responses.cancel()
        missing = [name for name in expect if name not in got]
        if missing:
            raise IstiodError(f"istiod sent no Authorization {missing} within {timeout:.0f} s (got {sorted(got)})")
        return got
