"""The generated authorization policies, decided by the real Kyverno engine (`kyverno test`).

Each case is one policy and one Envoy CheckRequest; `kyverno test` fails unless every observed
result (pass = allowed, fail = denied, skip = the policy abstained) equals the expected one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.manifests import authz
from components.settings.stackfile import load_stack

from . import kyverno_cli
from .conftest import ROOT
from .kyverno_cli import Case, envoy_request

pytestmark = pytest.mark.skipif(
    kyverno_cli.kyverno_bin() is None,
    reason="needs the Kyverno CLI from scripts/bootstrap.sh (run through `make test`)",
)


def _policies() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    dev = load_stack(ROOT / "Pulumi.dev.yaml")
    payments = load_stack(ROOT / "Pulumi.team-payments.yaml")
    assert dev.team is not None and payments.team is not None
    return (
        authz.destination_policy(dev.team, dev.destinations[0]),
        authz.destination_policy(payments.team, payments.destinations[0]),
        authz.default_deny_policy(),
    )


def authz_cases() -> list[Case]:
    ollama, partner, default = _policies()
    h = "ollama.external"
    p = "models.partner.example"
    return [
        # The blog's header rule.
        Case("ollama-header-true", ollama, "pass", envoy_request(h, {"x-force-authorized": "true"})),
        Case("ollama-header-enabled", ollama, "pass", envoy_request(f"{h}:80", {"X-Force-Authorized": "enabled"})),
        Case("ollama-header-wrong", ollama, "fail", envoy_request(h, {"x-force-authorized": "yes"})),
        Case("ollama-header-absent", ollama, "fail", envoy_request(h, {})),
        # Another destination's request: this policy abstains, the other one decides.
        Case("ollama-abstains-for-partner", ollama, "skip", envoy_request(p, {"x-force-authorized": "true"})),
        Case("partner-denies-ollama-header", partner, "fail", envoy_request(p, {"x-force-authorized": "true"})),
        Case("partner-abstains-for-ollama", partner, "skip", envoy_request(h, {})),
        Case(
            "partner-all-headers",
            partner,
            "pass",
            envoy_request(p, {"x-egress-client": "risk-batch", "x-tenant": "payments"}),
        ),
        Case("partner-one-header-missing", partner, "fail", envoy_request(p, {"x-egress-client": "risk-batch"})),
        # The catch-all denies what no destination matches (the server would otherwise allow it).
        Case("default-denies-unknown-host", default, "fail", envoy_request("evil.example", {})),
    ]


def test_authz_decisions_by_the_kyverno_engine(tmp_path: Path) -> None:
    out = kyverno_cli.run(tmp_path, authz_cases())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Test Summary: 10 tests passed and 0 tests failed" in out.stdout, out.stdout


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: claim that a request without the header is allowed."""
    ollama, _, _ = _policies()
    out = kyverno_cli.run(
        tmp_path, [Case("absent-claimed-allowed", ollama, "pass", envoy_request("ollama.external", {}))]
    )
    assert out.returncode != 0, out.stdout
