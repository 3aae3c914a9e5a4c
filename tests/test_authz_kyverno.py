"""The platform's authorization policies, compiled and decided by the real Kyverno engine (`kyverno test`).

Each case is one policy and one Envoy CheckRequest as Envoy sends it from a kgateway listener in
ambient: the port the request arrived on (`destination.address`; no `source.principal`, which Envoy
fills only from a downstream TLS peer certificate) and the route's context (`context_extensions`, the TrafficPolicy's
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


# The platform's team listeners (Pulumi.dev.yaml's egress:teams): port -> the namespace that owns it.
OWNERS = authz.listener_owners(load_stack(ROOT / "Pulumi.dev.yaml").teams)
PORT = {ns: port for port, ns in OWNERS.items()}


def authz_cases() -> list[Case]:
    generic, default = authz.destination_policy(OWNERS), authz.default_deny_policy()
    ml, (ollama,) = _stack("Pulumi.dev.yaml")
    payments, (partner, ledger) = _stack("Pulumi.team-payments.yaml")
    o_ctx, p_ctx, l_ctx = _context(ml, ollama), _context(payments, partner), _context(payments, ledger)
    o_host, p_host = ollama.host, partner.host
    me, pay, research = PORT[ml.namespace], PORT[payments.namespace], PORT["team-research"]
    ok_p = {"x-egress-client": "risk-batch", "x-tenant": "payments"}

    def case(name: str, expected: str, host: str, headers: dict[str, str], port: int | None, ctx: Any) -> Case:
        return Case(name, generic, expected, envoy_request(host, headers, port=port, context=ctx))

    no_headers = dict(o_ctx)
    for k in [k for k in no_headers if k.startswith(authz.CTX_HEADER_PREFIX)]:
        del no_headers[k]
    unicode_ctx = {**o_ctx, authz.CTX_DENY_MESSAGE: TRICKY}
    spoofed = envoy_request(
        p_host, ok_p, port=research, context=p_ctx, principal="spiffe://cluster.local/ns/team-payments/sa/default"
    )
    return [
        # On the owner's listener, with an allowed value of every required header.
        case("owner-header-true", "pass", o_host, {"x-force-authorized": "true"}, me, o_ctx),
        case("owner-header-enabled-port", "pass", f"{o_host}:80", {"X-Force-Authorized": "enabled"}, me, o_ctx),
        case("owner-all-headers", "pass", p_host, ok_p, pay, p_ctx),
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
        # Another team's listener with the right headers; a port no team owns; no address at all.
        case("other-team-port", "fail", p_host, ok_p, research, p_ctx),
        case("ml-port-on-payments-route", "fail", p_host, ok_p, me, p_ctx),
        case("gateway-own-listener", "fail", p_host, ok_p, 80, p_ctx),
        case("unowned-port", "fail", p_host, ok_p, 10999, p_ctx),
        case("no-destination-address", "fail", p_host, ok_p, None, p_ctx),
        # A principal is not read: a request on another team's port claiming the owner's identity.
        Case("principal-is-not-read", generic, "fail", spoofed),
        # The host is the route's: another host with this route's context is denied.
        case("route-host-mismatch", "fail", "ledger.partner.example", {"x-egress-client": "ledger-sync"}, pay, p_ctx),
        case("ledger-headers-on-partner", "fail", p_host, {"x-egress-client": "ledger-sync"}, pay, p_ctx),
        case("ledger-own", "pass", "ledger.partner.example", {"x-egress-client": "ledger-sync"}, pay, l_ctx),
        # A destination without header requirements: the owner's listener alone.
        case("listener-alone-owner", "pass", o_host, {}, me, no_headers),
        case("listener-alone-other", "fail", o_host, {}, research, no_headers),
        # Any Unicode in the message is data: it compiles and decides like any other.
        case("unicode-message-allow", "pass", o_host, {"x-force-authorized": "true"}, me, unicode_ctx),
        case("unicode-message-deny", "fail", o_host, {}, me, unicode_ctx),
        # No route context: the generic policy abstains, the default deny decides.
        case("no-context-abstains", "skip", "evil.example", {"x-force-authorized": "true"}, me, None),
        case("empty-context-abstains", "skip", "evil.example", {}, me, {}),
        Case("default-denies-unknown-host", default, "fail", envoy_request("evil.example", {}, port=me)),
        Case("default-denies-routed-too", default, "fail", envoy_request(o_host, {}, port=me, context=o_ctx)),
    ]


def test_authz_decisions_by_the_kyverno_engine(tmp_path: Path) -> None:
    cases = authz_cases()
    out = kyverno_cli.run(tmp_path, cases)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Test Summary: {len(cases)} tests passed and 0 tests failed" in out.stdout, out.stdout


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: claim that a request on another team's port is allowed."""
    team, (partner, _) = _stack("Pulumi.team-payments.yaml")
    ok = {"x-egress-client": "risk-batch", "x-tenant": "payments"}
    req = envoy_request(partner.host, ok, port=PORT["team-research"], context=_context(team, partner))
    out = kyverno_cli.run(tmp_path, [Case("other-claimed-allowed", authz.destination_policy(OWNERS), "pass", req)])
    assert out.returncode != 0, out.stdout


def test_the_port_map_of_500_teams_compiles_and_decides(tmp_path: Path) -> None:
    """The platform's design size: the policy's port -> namespace map with 500 teams."""
    owners = {10000 + i: f"team-t{i}" for i in range(500)}
    owners[10499] = "team-payments"
    policy = authz.destination_policy(owners)
    team, (partner, _) = _stack("Pulumi.team-payments.yaml")
    ok = {"x-egress-client": "risk-batch", "x-tenant": "payments"}
    ctx = _context(team, partner)
    cases = [
        Case("last-team-own-port", policy, "pass", envoy_request(partner.host, ok, port=10499, context=ctx)),
        Case("first-team-port", policy, "fail", envoy_request(partner.host, ok, port=10000, context=ctx)),
    ]
    out = kyverno_cli.run(tmp_path, cases)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Test Summary: 2 tests passed and 0 tests failed" in out.stdout, out.stdout


def approval_cases() -> list[Case]:
    """`egress-approval-in-force` against the registry of Pulumi.dev.yaml: it abstains (skip) while the
    route's host is approved for the route's namespace, at the request's time, and denies (fail) once the
    approval has ended, was never there, or the request carries no time."""
    platform = load_stack(ROOT / "Pulumi.dev.yaml")
    grants = authz.approval_grants(platform.teams, platform.approvals)
    payments, (partner, _) = _stack("Pulumi.team-payments.yaml")
    ctx, ok = _context(payments, partner), {"x-egress-client": "risk-batch", "x-tenant": "payments"}
    until = grants[payments.namespace][partner.host]  # the end of the approval's last day, UTC
    last_second, past = until, until.replace(":59Z", ":58Z")
    after = f"{int(until[:4]) + 1}{until[4:]}"
    revoked = {ns: {h: e for h, e in hosts.items() if h != partner.host} for ns, hosts in grants.items()}
    other_ns = {**ctx, authz.CTX_NAMESPACE: "team-research"}
    policy, without = authz.approval_policy(grants), authz.approval_policy(revoked)

    def req(time: str | None, context: dict[str, str] | None = ctx) -> dict[str, Any]:
        return envoy_request(partner.host, ok, port=PORT[payments.namespace], context=context, time=time)

    return [
        Case("approval-in-force", policy, "skip", req(past)),
        Case("approval-last-second", policy, "skip", req(last_second)),
        Case("approval-expired", policy, "fail", req(after)),
        Case("approval-revoked", without, "fail", req(past)),
        Case("approval-of-another-namespace", policy, "fail", req(past, other_ns)),
        Case("approval-no-request-time", policy, "fail", req(None)),
        Case("approval-no-route-context", policy, "skip", req(past, None)),
    ]


def test_ended_approvals_are_denied_by_the_kyverno_engine(tmp_path: Path) -> None:
    cases = approval_cases()
    out = kyverno_cli.run(tmp_path, cases)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Test Summary: {len(cases)} tests passed and 0 tests failed" in out.stdout, out.stdout
