"""`make sandbox`: the real Envoy configured from the stack's objects, the real authz server as the
chart starts it, checked scenario by scenario.

The authorization scenarios need the authz server binary (KYVERNO_AUTHZ_BIN); without it the
sandbox reports them NOT RUN and these tests skip after checking the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from components.manifests import authz, gateway
from components.manifests.stack import stack_objects
from components.settings import names
from components.settings.stackfile import load_stack
from sandbox import authz_server, envoy_config
from sandbox.scenarios import AUTHZ_SCENARIOS

from .conftest import ROOT
from .kyverno_cli import authz_bin
from .processes import alive, descendants

STACKS = ["Pulumi.dev.yaml", "Pulumi.team-payments.yaml"]
CHART = ROOT.parent / "shared" / "charts" / "kyverno-authz-server"


def _run(stack: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", stack],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


@pytest.mark.parametrize("stack", STACKS)
def test_sandbox_scenarios_hold(stack: str) -> None:
    out = _run(stack)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")], out.stdout
    passed = [line for line in lines if line.startswith("PASS")]
    for name in ("upstream paused", "authz down, failOpen false", "authz down, failOpen true", "unrouted host"):
        assert any(name in line for line in passed), (name, out.stdout)
    if authz_bin() is None:
        assert "not run" in lines[-1] and "all" not in lines[-1], lines[-1]
        pytest.skip("the authorization scenarios need the authz server (KYVERNO_AUTHZ_BIN)")
    assert not [line for line in lines if line.startswith("NOT RUN")], out.stdout
    for name in (
        "owner allowed",
        "denied without the headers",
        "another team's port",
        "this route's context from another team's port",
        "negative control, principal-based policy",
        "route context with another host",
        "unknown host, direct Check, default deny",
        "kubelet ConfigMap layout",
        "usage report over the gateway's access log",
    ):
        assert any(name in line for line in passed), (name, out.stdout)
    if stack == "Pulumi.dev.yaml":  # the demo destination has a credential and a budget
        for name in ("credential set by the gateway", "a burst past the budget", "the budget refills at its rate"):
            assert any(name in line for line in passed), (name, out.stdout)
    if stack == "Pulumi.team-payments.yaml":
        assert any("judged by ledger's route" in line for line in passed), out.stdout
    assert lines[-1].startswith("sandbox: all "), lines[-1]


def test_the_kept_access_log_reads_as_the_clusters(tmp_path: Path) -> None:
    """`make sandbox` keeps the log with each listener's real port, so `make usage` attributes every
    request to the team whose listener it arrived on, as it would read the gateway's in the cluster."""
    log = tmp_path / "access.log"
    out = subprocess.run(
        [sys.executable, "-m", "sandbox", "Pulumi.dev.yaml", "--access-log", str(log)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    ports = {json.loads(line)["listener_port"] for line in log.read_text().splitlines()}
    assert ports <= {10001, 10002, 10003} and 10001 in ports, ports
    report = subprocess.run(
        [sys.executable, "-m", "components.usage", "--log", str(log), "--format", "json", "Pulumi.dev.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    rows = {(r["team"], r["destination"]) for r in json.loads(report)}
    assert ("ml", "ollama") in rows and "(unknown)" not in {team for team, _ in rows}, rows


def test_summary_never_claims_all_passed_when_something_did_not_run() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KYVERNO_AUTHZ_BIN"}
    out = _run("Pulumi.team-payments.yaml", env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("NOT RUN")]
    assert (
        lines[-1].startswith("sandbox: ") and "all" not in lines[-1] and f"{len(AUTHZ_SCENARIOS)} not run" in lines[-1]
    ), lines[-1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_every_process_stops_on_a_signal(sig: signal.Signals, tmp_path: Path) -> None:
    """Stopped mid-run, the sandbox stops Envoy and the authz server before it exits; killed, it
    cannot, and the kernel stops them (each child asked for SIGTERM when its parent dies)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "Pulumi.team-payments.yaml"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # a killed sandbox leaves its work directory here
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first scenario line: Envoy (and the authz server) run
        assert first.startswith(("PASS", "FAIL", "NOT RUN")), first + (proc.stderr.read() if proc.stderr else "")
        children = descendants(proc.pid)
        assert len(children) >= (2 if authz_bin() else 1), children
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 130, err
            assert "stopping every process" in err
        deadline = time.monotonic() + 10
        while any(alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if alive(c)], children
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sandbox_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text((ROOT / "Pulumi.team-payments.yaml").read_text().replace("timeout: 5s", "timeout: 5"))
    out = _run(str(bad))
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# --- the translation: every Envoy field from the object field it mirrors ----------------------------
def _objects(stack: str) -> list[dict[str, Any]]:
    cfg = load_stack(ROOT / stack)
    return stack_objects(cfg, dt.date(2026, 11, 26), list(load_stack(ROOT / "Pulumi.dev.yaml").approvals)).all()


def _listener(stack: str, team: str) -> dict[str, Any]:
    entry = next(t for t in load_stack(ROOT / stack).teams if t.name == team)
    return gateway.team_listener_set(entry)


def test_envoy_routes_mirror_the_objects() -> None:
    objs = _objects("Pulumi.dev.yaml")
    ml = _listener("Pulumi.dev.yaml", "ml")
    (route,) = envoy_config.resolve(objs, ml, names.TEAM_LISTENER)
    tp = route.traffic_policy
    assert tp is not None and route.extension is not None
    vhost = envoy_config.virtual_host(route)
    action = vhost["routes"][0]["route"]
    assert vhost["domains"] == ["ollama.external"]
    assert action["cluster"] == "serviceentry_team-ml_egress-ollama_11434"
    assert action["timeout"] == "30s"
    assert action["retry_policy"] == {
        "retry_on": "gateway-error,connect-failure,reset,retriable-status-codes",
        "num_retries": 3,
        "per_try_timeout": "10s",
        "retriable_status_codes": [503, 504],
    }
    per_route = vhost["routes"][0]["typed_per_filter_config"]["ext_auth/team-ml/egress-ollama-authz"]
    context = per_route["config"]["check_settings"]["context_extensions"]
    assert context == tp["spec"]["extAuth"]["contextExtensions"]
    assert context[authz.CTX_NAMESPACE] == "team-ml" and context[authz.CTX_HOST] == "ollama.external"
    filt = envoy_config.ext_authz_filter(route.extension)
    assert filt["disabled"] is True and filt["typed_config"]["failure_mode_allow"] is False
    assert (
        filt["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
        == "service_kyverno-authz_kyverno-authz-server_9081"
    )
    opened = envoy_config.resolve(envoy_config.with_fail_open(objs), ml, names.TEAM_LISTENER)
    assert opened[0].extension is not None
    assert envoy_config.ext_authz_filter(opened[0].extension)["typed_config"]["failure_mode_allow"] is True
    plain = envoy_config.resolve(envoy_config.without_ext_auth(objs), ml, names.TEAM_LISTENER)
    plain_route = envoy_config.virtual_host(plain[0])["routes"][0]
    assert plain[0].extension is None and list(plain_route["typed_per_filter_config"]) == [
        envoy_config.LOCAL_RATE_LIMIT
    ]
    # The budget: the route's token bucket, from the TrafficPolicy (60/1m: one token a second, burst 20).
    bucket = vhost["routes"][0]["typed_per_filter_config"][envoy_config.LOCAL_RATE_LIMIT]["token_bucket"]
    assert bucket == {"max_tokens": 20, "tokens_per_fill": 1, "fill_interval": "1s"}
    # The credential: the header the policy sets, its value read from the Secret it names, overwriting.
    secret: dict[str, Any] = next(o for o in objs if o["kind"] == "Secret" and "stringData" in o)
    assert vhost["routes"][0]["request_headers_to_add"] == [
        {
            "header": {"key": "Authorization", "value": secret["stringData"]["ollama"]},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]


def test_only_routes_attached_to_the_teams_own_listener_are_served() -> None:
    objs = _objects("Pulumi.team-payments.yaml")
    own = _listener("Pulumi.dev.yaml", "payments")
    assert len(envoy_config.resolve(objs, own, names.TEAM_LISTENER)) == 2
    assert envoy_config.resolve(objs, own, "another-listener") == []
    # Another team's listener, and the Gateway's own: nothing of this team attaches there.
    assert envoy_config.resolve(objs, _listener("Pulumi.dev.yaml", "research"), names.TEAM_LISTENER) == []
    assert envoy_config.resolve(objs, gateway.egress_gateway(), names.GATEWAY_LISTENER) == []


def test_a_route_naming_another_teams_listener_is_not_attached_there() -> None:
    """Gateway API attachment: the listener admits routes of its team's namespace only (by name)."""
    objs = _objects("Pulumi.team-payments.yaml")
    research = _listener("Pulumi.dev.yaml", "research")
    for o in objs:
        if o["kind"] == "HTTPRoute":
            o["spec"]["parentRefs"][0]["name"] = research["metadata"]["name"]
    assert envoy_config.resolve(objs, research, names.TEAM_LISTENER) == []
    assert envoy_config.admits(research, names.TEAM_LISTENER, "team-research")
    assert not envoy_config.admits(research, names.TEAM_LISTENER, "team-payments")


def test_durations_translate_to_protobuf_json() -> None:
    from sandbox.envoy_config import _duration

    assert _duration("1m30s") == "90s"
    assert _duration("250ms") == "0.25s"


# --- the authz server as the chart starts it -------------------------------------------------------
def test_server_args_are_the_charts() -> None:
    args = authz_server.chart_args(authz.chart_values(None, None))
    assert args == [
        "serve",
        "envoy",
        "authz-server",
        "--probes-address=:9080",
        "--metrics-address=:9082",
        "--kube-policy-source=false",
        "--external-policy-source=file:///etc/egress-authz/approvals",
        "--external-policy-source=file:///etc/egress-authz/policies",
        "--external-policy-source=file:///etc/egress-authz/default-deny",
        "--grpc-network=tcp",
        "--grpc-address=:9081",
        "--allow-insecure-registry=false",
    ]
    loop = authz_server.on_loopback(args, {"grpc": 1, "probes": 2, "metrics": 3}, Path("/tmp/x"))
    assert "--grpc-address=127.0.0.1:1" in loop and "--probes-address=127.0.0.1:2" in loop
    assert "--external-policy-source=file:///tmp/x/etc/egress-authz/default-deny" in loop
    assert loop[-1] == args[-1]


def test_the_chart_template_renders_those_args() -> None:
    """chart_args mirrors templates/authz-server/deployment.yaml of the pinned chart: its lines are still there."""
    template = CHART / "templates" / "authz-server" / "deployment.yaml"
    if not template.exists():
        pytest.skip(f"the pinned chart is not at {CHART}")
    text = template.read_text()
    for line in (
        "- serve",
        "- '{{ $.Values.config.type }}'",
        "- authz-server",
        "- --probes-address=:9080",
        "- --metrics-address=:9082",
        "- --kube-policy-source={{ $.Values.config.sources.kube }}",
        '{{- range $.Values.config.sources.external }}\n          - {{ printf "--external-policy-source=%s"',
        "- --grpc-network={{ $.Values.config.grpc.network }}",
        "- --grpc-address={{ $.Values.config.grpc.address }}",
        "- --allow-insecure-registry={{ $.Values.config.allowInsecureRegistry }}",
    ):
        assert line in text, line
    values = (CHART / "values.yaml").read_text()
    assert "network: tcp" in values and "address: :9081" in values and "allowInsecureRegistry: false" in values


def test_configmap_volume_layout_is_kubelets(tmp_path: Path) -> None:
    cm = authz.default_deny_configmap()
    payload = authz_server.lay_out_configmap(cm, tmp_path / "v")
    entries = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert entries == sorted(["..data", payload.name, names.DEFAULT_DENY_FILE])
    assert payload.name.startswith("..") and len(payload.name) == len("..2026_11_26_14_30_00.123456789")
    assert os.readlink(tmp_path / "v" / "..data") == payload.name
    assert os.readlink(tmp_path / "v" / names.DEFAULT_DENY_FILE) == f"..data/{names.DEFAULT_DENY_FILE}"
    assert (tmp_path / "v" / names.DEFAULT_DENY_FILE).read_text() == cm["data"][names.DEFAULT_DENY_FILE]
