"""Kyverno's real admission controller (devenv.kyverno_admission) against the local control plane.

With the controller running out of cluster (webhooks registered as https://127.0.0.1:<port>/...), our
ClusterPolicy becomes ready, the API server refuses an unapproved external ServiceEntry with the policy's
message and admits an approved one; afterwards no process is left and no webhook calls the stopped
controller, however it was left (block end, failed start, SIGTERM or Ctrl-C to the CLI). Skipped where the
binaries' variables are unset: scripts/build/controlplane.sh and scripts/build/kyverno-admission.sh print them.

The module's controller is stopped by the last test of the block that shares it (tests run in file order).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests import destination as builders
from components.manifests.admission import CLUSTER_POLICY_NAME, cluster_policy
from components.settings.config import Approval, Destination, Team
from components.settings.stackfile import load_stack
from devenv.controlplane import ControlPlane, missing_binaries
from devenv.kubeapi import KubeApi
from devenv.kyverno_admission import (
    CHARTS_DIR,
    MANAGED_BY,
    KyvernoAdmission,
    KyvernoAdmissionError,
    apply,
    install_crds,
    missing_binary,
    platform_chart,
    wait_policy_ready,
)

from .conftest import ROOT
from .processes import alive, children_of

_NO_CHART = None if (CHARTS_DIR / "kyverno").is_dir() else f"the kyverno chart is not at {CHARTS_DIR / 'kyverno'}"
_MISSING = missing_binaries() or missing_binary() or _NO_CHART
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

ISTIO_CRDS = Path("istio/1.30.3/crd-all.gen.yaml")
Json = dict[str, Any]


@dataclass
class Env:
    plane: ControlPlane
    kyverno: KyvernoAdmission
    api: KubeApi
    team: Team
    dest: Destination
    approval: Approval


@pytest.fixture(scope="module")
def env(crds_dir: Path) -> Iterator[Env]:
    cfg = load_stack(ROOT / "Pulumi.dev.yaml")
    assert cfg.team is not None
    with ControlPlane() as plane:
        api = plane.api
        docs = yaml.safe_load_all((crds_dir / ISTIO_CRDS).read_text())
        install_crds(api, [doc for doc in docs if doc and doc.get("kind") == "CustomResourceDefinition"])
        with KyvernoAdmission(plane) as kyverno:
            status, _ = api.request("POST", "api/v1/namespaces", {"metadata": {"name": cfg.team.namespace}})
            assert status in (201, 409), status
            yield Env(plane, kyverno, api, cfg.team, cfg.destinations[0], cfg.approvals[0])


def _webhook_urls(api: KubeApi) -> dict[str, list[str]]:
    """Every Kyverno-managed webhook configuration (validating and mutating) -> the URLs it calls."""
    out: dict[str, list[str]] = {}
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        status, body = api.request("GET", f"apis/admissionregistration.k8s.io/v1/{kind}?labelSelector={MANAGED_BY}")
        assert status == 200, body
        for item in body["items"]:
            hooks = item.get("webhooks") or []
            out[f"{kind}/{item['metadata']['name']}"] = [h["clientConfig"].get("url", "") for h in hooks]
    return out


def _service_entry(env: Env, name: str, approval: Approval | None) -> Json:
    entry = builders.service_entry(env.team, env.dest, ["192.0.2.10"], approval, dt.date.today())
    entry["metadata"]["name"] = f"{name}-{uuid.uuid4().hex[:6]}"
    return entry


def _create(env: Env, obj: Json) -> tuple[int, Json]:
    ns = obj["metadata"]["namespace"]
    status, body = env.api.request("POST", f"apis/networking.istio.io/v1/namespaces/{ns}/serviceentries", obj)
    return status, body


def _rule_message(rule: str) -> str:
    for item in cluster_policy()["spec"]["rules"]:
        if item["name"] == rule:
            return str(item["validate"]["message"])
    raise AssertionError(f"no rule {rule}")


def test_webhooks_are_registered_on_loopback(env: Env) -> None:
    assert env.kyverno.url.startswith("https://127.0.0.1:")
    urls = _webhook_urls(env.api)
    policy_hooks = urls["validatingwebhookconfigurations/kyverno-policy-validating-webhook-cfg"]
    assert policy_hooks == [f"{env.kyverno.url}/policyvalidate"]
    assert all(url.startswith(f"{env.kyverno.url}/") for hooks in urls.values() for url in hooks), urls
    assert 0 < env.kyverno.startup_seconds < env.kyverno.timeout


def test_our_cluster_policy_becomes_ready(env: Env) -> None:
    policy = cluster_policy()
    apply(env.api, f"apis/kyverno.io/v1/clusterpolicies/{CLUSTER_POLICY_NAME}", policy)
    ready = wait_policy_ready(env.api, CLUSTER_POLICY_NAME, timeout=90, admission=env.kyverno)
    assert ready["metadata"]["name"] == CLUSTER_POLICY_NAME
    # Kyverno now sends ServiceEntry writes to its resource webhook, at the loopback URL.
    resource_hooks = _webhook_urls(env.api)["validatingwebhookconfigurations/kyverno-resource-validating-webhook-cfg"]
    assert resource_hooks and all(url.startswith(f"{env.kyverno.url}/validate") for url in resource_hooks)


def test_unapproved_external_service_entry_is_refused(env: Env) -> None:
    entry = _service_entry(env, "unapproved", None)
    status, body = _create(env, entry)
    assert status == 400, (status, body)
    message = body["message"]
    assert 'admission webhook "validate.kyverno.svc-fail" denied the request' in message, message
    assert CLUSTER_POLICY_NAME in message
    assert _rule_message("require-approval-label") in message
    assert _rule_message("require-approval-annotations") in message
    name, ns = entry["metadata"]["name"], entry["metadata"]["namespace"]
    assert env.api.get("ServiceEntry", name, ns) is None


def test_approved_external_service_entry_is_admitted(env: Env) -> None:
    entry = _service_entry(env, "approved", env.approval)
    status, body = _create(env, entry)
    assert status == 201, (status, body)
    stored = env.api.get("ServiceEntry", entry["metadata"]["name"], entry["metadata"]["namespace"])
    assert stored is not None
    assert stored["metadata"]["labels"] == entry["metadata"]["labels"]


def test_failed_start_reports_the_log_and_leaves_nothing(env: Env, tmp_path: Path) -> None:
    broken = tmp_path / "kyverno"
    broken.write_text("#!/bin/sh\necho 'exiting... caSecretName is a required flag' >&2\nexit 3\n")
    broken.chmod(0o755)
    failing = KyvernoAdmission(env.plane, binary=broken, timeout=30)
    with pytest.raises(KyvernoAdmissionError, match=r"kyverno exited with code 3(.|\n)*caSecretName is a required"):
        failing.start()
    assert failing.pid and not alive(failing.pid)
    # The running controller's webhooks are untouched.
    assert _webhook_urls(env.api)["validatingwebhookconfigurations/kyverno-policy-validating-webhook-cfg"]


def test_after_the_block_no_process_and_no_webhook_is_left(env: Env) -> None:
    pid, url = env.kyverno.pid, env.kyverno.url
    log_file = env.kyverno.log_file
    assert alive(pid)
    env.kyverno.__exit__(None, None, None)
    assert not alive(pid)
    assert not log_file.exists()
    urls = _webhook_urls(env.api)
    assert not [name for name, hooks in urls.items() if any(u.startswith(url) for u in hooks)], urls
    # The API server is usable again: nothing calls the stopped controller.
    status, body = _create(env, _service_entry(env, "after", None))
    assert status == 201, (status, body)
    env.kyverno.stop()  # idempotent


def test_stops_when_the_block_raises(env: Env) -> None:
    """An exception in the block stops the controller (the control plane of the module is reused)."""
    pid = 0
    with pytest.raises(RuntimeError, match="boom"), KyvernoAdmission(env.plane) as kyverno:
        pid = kyverno.pid
        assert alive(pid)
        raise RuntimeError("boom")
    assert pid and not alive(pid)
    assert not [name for name, hooks in _webhook_urls(env.api).items() if any(u.startswith(kyverno.url) for u in hooks)]


# --- the CLI ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_stops_everything_on_signal(sig: signal.Signals, tmp_path: Path) -> None:
    stderr = (tmp_path / "stderr").open("w+")
    chart = tmp_path / "chart.json"  # rendered once per test session, not by each CLI run
    chart.write_text(json.dumps(platform_chart()))
    cli = subprocess.Popen(
        [sys.executable, "-m", "devenv.kyverno_admission", "--chart", str(chart)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert cli.stdout is not None
        line = cli.stdout.readline()  # printed once the webhooks answer; EOF if it failed
        stderr.seek(0)
        assert line.startswith("export KUBECONFIG="), (line, stderr.read())
        children = children_of(cli.pid)
        expected = ["etcd", "kube-apiserver", "kube-controller", "kyverno"]  # comm: 15 characters
        assert sorted(children.values()) == expected, children
        cli.send_signal(sig)
        assert cli.wait(90) == 0
        assert not [name for pid, name in children.items() if alive(pid)]
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        stderr.close()
