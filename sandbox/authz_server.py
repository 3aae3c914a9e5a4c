"""The authz server as the cluster runs it: the chart's container args from the program's chart
values, and its policy directories laid out as kubelet lays out a ConfigMap volume.

Only addresses and the mount root differ: loopback ports instead of the pod's, and the mount paths
under the sandbox's work directory.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.manifests import authz
from components.manifests.kinds import Obj

# The pinned chart's defaults (charts/kyverno-authz-server/values.yaml, config.grpc).
CHART_GRPC_NETWORK = "tcp"
CHART_GRPC_ADDRESS = ":9081"
CHART_PROBES_ADDRESS = ":9080"  # literal in templates/authz-server/deployment.yaml
CHART_METRICS_ADDRESS = ":9082"  # literal in templates/authz-server/deployment.yaml


def chart_args(values: Mapping[str, Any]) -> list[str]:
    """The container args templates/authz-server/deployment.yaml (chart 0.4.0) renders from `values`
    for `config.type: envoy` (tests/test_sandbox.py checks the template still reads this way)."""
    cfg = values["config"]
    grpc = cfg.get("grpc", {})
    return [
        "serve",
        cfg["type"],
        "authz-server",
        f"--probes-address={CHART_PROBES_ADDRESS}",
        f"--metrics-address={CHART_METRICS_ADDRESS}",
        f"--kube-policy-source={str(cfg['sources']['kube']).lower()}",
        *(f"--external-policy-source={s}" for s in cfg["sources"]["external"]),
        f"--grpc-network={grpc.get('network', CHART_GRPC_NETWORK)}",
        f"--grpc-address={grpc.get('address', CHART_GRPC_ADDRESS)}",
        f"--allow-insecure-registry={str(cfg.get('allowInsecureRegistry', False)).lower()}",
    ]


def on_loopback(args: Sequence[str], ports: Mapping[str, int], mount_root: Path) -> list[str]:
    """The same args with loopback ports and the mount paths under `mount_root`."""
    addresses = {
        f"--probes-address={CHART_PROBES_ADDRESS}": f"--probes-address=127.0.0.1:{ports['probes']}",
        f"--metrics-address={CHART_METRICS_ADDRESS}": f"--metrics-address=127.0.0.1:{ports['metrics']}",
        f"--grpc-address={CHART_GRPC_ADDRESS}": f"--grpc-address=127.0.0.1:{ports['grpc']}",
    }
    out = []
    for a in args:
        a = addresses.get(a, a)
        prefix = "--external-policy-source=file://"
        if a.startswith(prefix):
            a = f"{prefix}{mount_root}{a.removeprefix(prefix)}"
        out.append(a)
    return out


def kubelet_timestamp(now: dt.datetime | None = None) -> str:
    """The name kubelet's AtomicWriter gives a payload directory (`..2006_01_02_15_04_05.<nanos>`)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{now.microsecond * 1000:09d}"


def lay_out_configmap(configmap: Obj, directory: Path) -> Path:
    """Write a ConfigMap volume as kubelet does: the files in a timestamped directory, `..data`
    linking to it, and one link per key to `..data/<key>`. Returns the timestamped directory."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = directory / kubelet_timestamp()
    payload.mkdir(mode=0o755)
    for key, text in configmap["data"].items():
        (payload / key).write_bytes(text.encode("utf-8"))
        (payload / key).chmod(0o644)
    os.symlink(payload.name, directory / "..data")
    for key in configmap["data"]:
        os.symlink(f"..data/{key}", directory / key)
    return payload


def lay_out_sources(configmaps: Sequence[Obj], mount_root: Path) -> dict[str, Path]:
    """Each policy ConfigMap at its mount path (authz.POLICY_SOURCES) under `mount_root`."""
    out = {}
    for cm in configmaps:
        source = authz.source_of(cm)
        directory = mount_root / source.directory.lstrip("/")
        lay_out_configmap(cm, directory)
        out[source.role] = directory
    return out
