"""Runs `kyverno test` (the real Kyverno engine, built by scripts/bootstrap.sh) on generated cases."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.manifests.yamltext import dump_one


def _executable(variable: str) -> str | None:
    path = os.environ.get(variable)
    return path if path and os.access(path, os.X_OK) else None


def kyverno_bin() -> str | None:
    """The Kyverno CLI (KYVERNO_BIN)."""
    return _executable("KYVERNO_BIN")


def authz_bin() -> str | None:
    """The Kyverno authz server (KYVERNO_AUTHZ_BIN, scripts/build/kyverno-authz.sh)."""
    return _executable("KYVERNO_AUTHZ_BIN")


def envoy_request(
    host: str,
    headers: dict[str, str],
    path: str = "/",
    method: str = "GET",
    port: int | None = None,
    context: dict[str, str] | None = None,
    principal: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """An Envoy CheckRequest as protojson (header keys lowercased, as Envoy sends them): the port of
    the listener it arrived on as `destination.address` (what reaches ext_authz at a kgateway Gateway
    in ambient), the route's `context_extensions`; `principal` only to show it is not read; `time` (RFC
    3339) the request's time, as Envoy sets it (check_request_utils.cc setRequestTime)."""
    attributes: dict[str, Any] = {
        "request": {
            **({"time": time} if time is not None else {}),
            "http": {
                "method": method,
                "host": host,
                "path": path,
                "headers": {":authority": host, **{k.lower(): v for k, v in headers.items()}},
            },
        }
    }
    if port is not None:
        attributes["destination"] = {"address": {"socketAddress": {"address": "10.244.0.7", "portValue": port}}}
    if principal is not None:
        attributes["source"] = {"principal": principal}
    if context is not None:
        attributes["contextExtensions"] = context
    return {"attributes": attributes}


@dataclass
class Case:
    """One expected outcome of one policy: pass = allowed, fail = denied, skip = abstained."""

    name: str
    policy: dict[str, Any]
    expected: str
    request: dict[str, Any] | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    rule: str | None = None


def write(root: Path, case: Case) -> None:
    d = root / case.name
    d.mkdir(parents=True)
    # The same emitter as the policy files the authz server loads (manifests.authz.policy_file).
    (d / "policy.yaml").write_text(dump_one(case.policy), encoding="utf-8")
    test: dict[str, Any] = {
        "apiVersion": "cli.kyverno.io/v1alpha1",
        "kind": "Test",
        "metadata": {"name": case.name},
        "policies": ["./policy.yaml"],
    }
    result: dict[str, Any] = {"policy": case.policy["metadata"]["name"], "result": case.expected}
    if case.request is not None:
        (d / "request.json").write_text(json.dumps(case.request, ensure_ascii=False), encoding="utf-8")
        test["envoyPayloads"] = ["./request.json"]
        result["kind"] = ""
    if case.resources:
        (d / "resources.yaml").write_text(yaml.safe_dump_all(case.resources, sort_keys=False))
        test["resources"] = ["./resources.yaml"]
        result.update(
            kind=case.resources[0]["kind"],
            resources=[r["metadata"]["name"] for r in case.resources],
            rule=case.rule,
        )
    test["results"] = [result]
    (d / "kyverno-test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))


def run(root: Path, cases: list[Case]) -> subprocess.CompletedProcess[str]:
    binary = kyverno_bin()
    assert binary is not None
    for c in cases:
        write(root, c)
    return subprocess.run([binary, "test", str(root)], capture_output=True, text=True, timeout=300, check=False)
