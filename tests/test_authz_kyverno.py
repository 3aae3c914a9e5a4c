"""The platform's authorization policies, compiled and decided by the real Kyverno engine (`kyverno test`).

Each case is one policy and one Envoy CheckRequest as Envoy sends it: the caller's mesh identity
(`source.principal`) and the route's context (`context_extensions`, the TrafficPolicy's
`extAuth.contextExtensions` the builders write). `kyverno test` fails unless every observed result
(pass = allowed, fail = denied, skip = the policy abstained) equals the expected one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.manifests import authz
from components.manifests.destination import traffic_policy
from components.settings.config import Destination, StackConfig, Team
from components.settings.stackfile import load_stack

from . import kyverno_cli
from .conftest import ROOT
from .kyverno_cli import Case, envoy_request

pytestmark = pytest.mark.skipif(
    kyverno_cli.kyverno_bin() is None,
    reason="needs the Kyverno CLI (KYVERNO_BIN) from scripts/bootstrap.sh (run through `make test`)",
)

TRICKY = 'Nö 😀 𝄞 \U0010ffff "quoted" \'single\' \\backslash\\ \\u0041 \\n ${x} " + envoy.Allowed() + "'


def _stack(name: str) -> tuple[Team, list[Destination]]:
    cfg: StackConfig = load_stack(ROOT / name)
    assert cfg.team is not None
    return cfg.team, list(cfg.destinations)


def _context(team: Team, dest: Destination) -> dict[str, str]:
    """The route's context exactly as the TrafficPolicy carries it."""
    ctx: dict[str, str] = traffic_policy(team, dest)["spec"]["extAuth"]["contextExtensions"]
    return ctx


def _spiffe(namespace: str) -> str:
    return f"spiffe://cluster.local/ns/{namespace}/sa/default"


def authz_cases() -> list[Case]:
    generic, default = authz.destination_policy(), authz.default_deny_policy()
    ml, (ollama,) = _stack("Pulumi.dev.yaml")
    payments, (partner, ledger) = _stack("Pulumi.team-payments.yaml")
    o_ctx, p_ctx, l_ctx = _context(ml, ollama), _context(payments, partner), _context(payments, ledger)
    o_host, p_host = ollama.host, partner.host
    me, pay, other = _spiffe(ml.namespace), _spiffe(payments.namespace), _spiffe("team-other")
    ok_p = {"x-egress-client": "risk-batch", "x-tenant": "payments"}

    def case(name: str, expected: str, host: str, headers: dict[str, str], who: str | None, ctx: Any) -> Case:
        return Case(name, generic, expected, envoy_request(host, headers, principal=who, context=ctx))

    no_headers = dict(o_ctx)
    for k in [k for k in no_headers if k.startswith(authz.CTX_HEADER_PREFIX)]:
        del no_headers[k]
    unicode_ctx = {**o_ctx, authz.CTX_DENY_MESSAGE: TRICKY}
    return [
        # The owner's workloads with an allowed value of every required header.
        case("owner-header-true", "pass", o_host, {"x-force-authorized": "true"}, me, o_ctx),
        case("owner-header-enabled-port", "pass", f"{o_host}:80", {"X-Force-Authorized": "enabled"}, me, o_ctx),
        case("owner-all-headers", "pass", p_host, ok_p, pay, p_ctx),
        case("owner-other-sa", "pass", p_host, ok_p, "spiffe://cluster.local/ns/team-payments/sa/batch", p_ctx),
        # Headers missing or wrong.
        case("header-wrong", "fail", o_host, {"x-force-authorized": "yes"}, me, o_ctx),
        case("header-absent", "fail", o_host, {}, me, o_ctx),
        case("header-empty", "fail", o_host, {"x-force-authorized": ""}, me, o_ctx),
        case("one-header-missing", "fail", p_host, {"x-egress-client": "risk-batch"}, pay, p_ctx),
        case(
            "joined-values-are-not-a-value",
            "fail",
            p_host,
            {**ok_p, "x-egress-client": "fraud-scoring\nrisk-batch"},
            pay,
            p_ctx,
        ),
        # Another team's identity with the right headers; no identity; not a SPIFFE id.
        case("other-team", "fail", p_host, ok_p, other, p_ctx),
        case("other-team-ml-on-payments", "fail", p_host, ok_p, me, p_ctx),
        case("no-identity", "fail", p_host, ok_p, None, p_ctx),
        case("not-spiffe", "fail", p_host, ok_p, "team-payments", p_ctx),
        case("spiffe-suffix", "fail", p_host, ok_p, _spiffe("team-payments") + "/x", p_ctx),
        case("spiffe-prefix-namespace", "fail", p_host, ok_p, _spiffe("team-payments-evil"), p_ctx),
        # The host is the route's: another host with this route's context is denied.
        case("route-host-mismatch", "fail", "ledger.partner.example", {"x-egress-client": "ledger-sync"}, pay, p_ctx),
        case("ledger-headers-on-partner", "fail", p_host, {"x-egress-client": "ledger-sync"}, pay, p_ctx),
        case("ledger-own", "pass", "ledger.partner.example", {"x-egress-client": "ledger-sync"}, pay, l_ctx),
        # A destination without header requirements: the owner's identity alone.
        case("identity-alone-owner", "pass", o_host, {}, me, no_headers),
        case("identity-alone-other", "fail", o_host, {}, other, no_headers),
        # Any Unicode in the message is data: it compiles and decides like any other.
        case("unicode-message-allow", "pass", o_host, {"x-force-authorized": "true"}, me, unicode_ctx),
        case("unicode-message-deny", "fail", o_host, {}, me, unicode_ctx),
        # No route context: the generic policy abstains, the default deny decides.
        case("no-context-abstains", "skip", "evil.example", {"x-force-authorized": "true"}, me, None),
        case("empty-context-abstains", "skip", "evil.example", {}, me, {}),
        Case("default-denies-unknown-host", default, "fail", envoy_request("evil.example", {}, principal=me)),
        Case("default-denies-routed-too", default, "fail", envoy_request(o_host, {}, principal=me, context=o_ctx)),
    ]


def test_authz_decisions_by_the_kyverno_engine(tmp_path: Path) -> None:
    cases = authz_cases()
    out = kyverno_cli.run(tmp_path, cases)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Test Summary: {len(cases)} tests passed and 0 tests failed" in out.stdout, out.stdout


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: claim that another team's identity is allowed."""
    team, (partner, _) = _stack("Pulumi.team-payments.yaml")
    ok = {"x-egress-client": "risk-batch", "x-tenant": "payments"}
    req = envoy_request(partner.host, ok, principal=_spiffe("team-other"), context=_context(team, partner))
    out = kyverno_cli.run(tmp_path, [Case("other-claimed-allowed", authz.destination_policy(), "pass", req)])
    assert out.returncode != 0, out.stdout
