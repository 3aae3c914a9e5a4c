"""`make sandbox`: real Envoy driven by the stack config, checked scenario by scenario.

The authorization scenarios need the Kyverno authz server binary (KYVERNO_AUTHZ_BIN); without it
they are reported as not run, and the retry and fail-closed scenarios still run for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from components.settings.stackfile import load_stack
from sandbox import envoy_config

from .conftest import ROOT

STACKS = ["Pulumi.dev.yaml", "Pulumi.team-payments.yaml"]


def _run(stack: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", stack], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("stack", STACKS)
def test_sandbox_scenarios_hold(stack: str) -> None:
    out = _run(stack)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    passed = [line for line in lines if line.startswith("PASS")]
    assert any("upstream paused" in line for line in passed)
    assert any("authz stopped, failOpen false" in line for line in passed)
    assert any("authz stopped, failOpen true" in line for line in passed)
    if os.environ.get("KYVERNO_AUTHZ_BIN"):
        assert not [line for line in lines if line.startswith("NOT RUN")]
        assert any("allowed with the headers" in line for line in passed)
        assert any("denied without the headers" in line for line in passed)
        assert any("canary" in line for line in passed)


def test_sandbox_bad_config_is_one_line(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "Pulumi.bad.yaml"
    bad.write_text((ROOT / "Pulumi.team-payments.yaml").read_text().replace("timeout: 5s", "timeout: 5"))
    out = _run(str(bad))
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_envoy_translation_mirrors_the_traffic_policy() -> None:
    cfg = load_stack(ROOT / "Pulumi.dev.yaml")
    assert cfg.team is not None
    dest = cfg.destinations[0]
    vhost = envoy_config.virtual_host(cfg.team, dest)
    route = vhost["routes"][0]["route"]
    assert vhost["domains"] == ["ollama.external", "ollama.external:*"]
    assert route["timeout"] == "30s"
    assert route["retry_policy"] == {
        "retry_on": "gateway-error,connect-failure,reset,retriable-status-codes",
        "num_retries": 3,
        "per_try_timeout": "10s",
        "retriable_status_codes": [503, 504],
    }
    authz = envoy_config.ext_authz_filter(dest)
    assert authz["disabled"] is True and authz["typed_config"]["failure_mode_allow"] is False
    fmt = json.dumps(envoy_config.listener("l", 1, cfg.team, [dest], "/dev/null"))
    for field in ("response_flags", "upstream_request_attempt_count", "upstream_transport_failure_reason"):
        assert field in fmt


def test_durations_translate_to_protobuf_json() -> None:
    from sandbox.envoy_config import _duration

    assert _duration("1m30s") == "90s"
    assert _duration("250ms") == "0.25s"
