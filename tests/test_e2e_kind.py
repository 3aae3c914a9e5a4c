"""End to end on kind: `pulumi up` of a throwaway platform stack, the blog's three behaviours, destroy.

Runs where Docker (with a reachable engine), kind and kubectl exist and the command and docker
plugins are installed; elsewhere it is skipped with the reason. It takes several minutes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.settings import names, versions
from components.settings.config import duration_ms
from components.settings.stackfile import load_stack
from scripts.preflight import missing

from .conftest import ROOT
from .engine import Engine, pulumi_bin


def _why_not() -> str | None:
    if pulumi_bin() is None:
        return "needs the Pulumi CLI from scripts/bootstrap.sh"
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"needs {tool}, which this machine lacks"
    return missing("dev")


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def _sh(*cmd: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, str, dict[str, object]]]:
    engine = Engine.create(tmp_path_factory.mktemp("e2e"))
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    doc["config"]["egress:platform"]["cluster"]["name"] = f"egress-{name}"
    engine.write_stack(name, yaml.safe_dump(doc))
    engine.init(name)
    # kind writes the cluster's context where kubectl (the try commands) reads it: the user's kubeconfig,
    # as with `make up`, not the team kubeconfig the engine's runs get by default.
    kube = {"KUBECONFIG": os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")}
    try:
        up = engine.run("up", "--stack", name, "--yes", "--skip-preview", env=kube, timeout=3600)
        assert up.returncode == 0, up.stdout + up.stderr
        outputs = json.loads(engine.must("stack", "output", "--stack", name, "--json", "--show-secrets"))
        yield engine, name, outputs
    finally:
        engine.run("destroy", "--stack", name, "--yes", env=kube, timeout=1800)
        _sh("kind", "delete", "cluster", "--name", f"egress-{name}")


def _curl(outputs: dict[str, object], key: str) -> str:
    cmds = outputs["tryCommands"]
    assert isinstance(cmds, dict)
    out = subprocess.run(cmds[key], shell=True, capture_output=True, text=True, timeout=300, check=False)
    return out.stdout + out.stderr


def test_allowed_with_the_header(stack: tuple[Engine, str, dict[str, object]]) -> None:
    _, _, outputs = stack
    text = _curl(outputs, "allowed")
    assert " 200 " in text and "Ollama is running" in text, text


def test_denied_without_the_header(stack: tuple[Engine, str, dict[str, object]]) -> None:
    _, _, outputs = stack
    text = _curl(outputs, "denied")
    assert " 403 " in text and "Access denied by Kyverno policy" in text, text


def test_retries_while_the_upstream_is_paused(stack: tuple[Engine, str, dict[str, object]]) -> None:
    _, name, outputs = stack
    text = _curl(outputs, "retries")
    assert " 503 " in text or " 504 " in text, text
    time.sleep(2)
    logs = _sh(
        "kubectl",
        "--context",
        f"kind-egress-{name}",
        "-n",
        names.GATEWAY_NAMESPACE,
        "logs",
        f"deploy/{names.GATEWAY_NAME}",
        "--tail=50",
    ).stdout
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    retried = [e for e in entries if e.get("authority") == "ollama.external" and e.get("response_code") in (503, 504)]
    assert retried, logs
    # A paused container leaves connections hanging: each try ends at perTryTimeout, and the request
    # at its timeout, so the tries are attempts + 1 or as many per-try timeouts as fit (30s / 10s = 3).
    dest = load_stack(ROOT / "Pulumi.dev.yaml").destinations[0]
    fit = math.ceil(duration_ms(dest.timeout) / duration_ms(dest.retries.per_try_timeout))
    assert retried[-1]["upstream_request_attempt_count"] == min(dest.retries.attempts + 1, fit)
    assert retried[-1]["response_flags"], retried[-1]
    # The team's listener: the access log names the port it arrived on.
    assert retried[-1]["listener_port"] in (10001, "10001"), retried[-1]


def _curl_from(name: str, namespace: str, port: int, labels: str = "") -> subprocess.CompletedProcess[str]:
    """curl, with ml's header, from a throwaway pod of `namespace` to the gateway's `port`."""
    cmd = [
        "kubectl", "--context", f"kind-egress-{name}", "-n", namespace, "run", f"try-{uuid.uuid4().hex[:6]}",
        "--rm", "-i", "--restart=Never", f"--image={versions.CURL_IMAGE}",
        *([f"--labels={labels}"] if labels else []),
        "--", "curl", "-sS", "-i", "--max-time", "10", "-H", "Host: ollama.external",
        "-H", "x-force-authorized: true", f"http://{names.gateway_address()}:{port}/",
    ]  # fmt: skip
    return _sh(*cmd, timeout=300)


def test_another_teams_pod_on_the_teams_port_is_refused(stack: tuple[Engine, str, dict[str, object]]) -> None:
    """ztunnel (and the team's NetworkPolicy): research's pod cannot open ml's port; no HTTP reply."""
    _, name, _ = stack
    out = _curl_from(name, "team-research", 10001)
    assert "HTTP/1.1 200" not in out.stdout and "Ollama is running" not in out.stdout, out.stdout


def test_a_pod_out_of_ambient_is_refused(stack: tuple[Engine, str, dict[str, object]]) -> None:
    """A pod of the team itself, opted out of ambient, arrives in plaintext: STRICT mTLS refuses it."""
    _, name, _ = stack
    out = _curl_from(name, "team-ml", 10001, f"{names.AMBIENT_LABEL}=none")
    assert "HTTP/1.1 200" not in out.stdout and "Ollama is running" not in out.stdout, out.stdout
