"""The real authz server and the real Envoy in the sandbox, beyond the scenario run:

- a destination changed while everything runs takes effect with the next request, through the
  route's context alone (Envoy reloads its routes; the authz server is neither restarted nor
  re-read);
- a policy that does not load or compile, or a deny message with any Unicode, never opens the gate;
- a destination without header requirements is usable from its owner's listener alone.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from components.manifests import authz
from components.manifests.kinds import Obj
from components.settings.config import Authz, StackConfig
from components.settings.stackfile import load_stack
from sandbox.harness import FAIL_OPEN, OWN, PRINCIPAL, PolicyFiles, Sandbox, allowed_headers, platform_of

from .conftest import ROOT
from .kyverno_cli import authz_bin

pytestmark = pytest.mark.skipif(
    authz_bin() is None, reason="needs the authz server (KYVERNO_AUTHZ_BIN, scripts/build/kyverno-authz.sh)"
)

PAYMENTS = ROOT / "Pulumi.team-payments.yaml"
# Characters a message may hold that broke the old per-destination policies (a CEL string literal
# cannot carry a JSON surrogate pair escape) or that look like code or escapes.
TRICKY = (
    "Zugriff verweigert 😀🚫 𝄞 \U0010ffff \u200d\u202e \u2018quotes\u2019 \"double\" 'single' `back` "
    '\\ \\\\ \\u0041 \\uD83D\\uDE00 \\n ${x} %s {{ .x }} " + envoy.Allowed().Response() + " \t end'
)


def _with_destination(cfg: StackConfig, index: int, **authz_update: Any) -> StackConfig:
    dests = list(cfg.destinations)
    dests[index] = dests[index].model_copy(update={"authz": dests[index].authz.model_copy(update=authz_update)})
    return cfg.model_copy(update={"destinations": dests})


@pytest.fixture
def payments() -> StackConfig:
    return load_stack(PAYMENTS)


def _box(cfg: StackConfig, tmp_path: Path, policy_files: PolicyFiles = authz.platform_configmaps) -> Iterator[Sandbox]:
    platform = platform_of(cfg, PAYMENTS)
    box = Sandbox(cfg, tmp_path, authz_bin(), platform.approvals_in_force, platform.teams, policy_files=policy_files)
    try:
        box.start()
        yield box
    finally:
        box.stop()


def test_a_destination_changed_while_running_takes_effect_without_a_restart(
    payments: StackConfig, tmp_path: Path
) -> None:
    gen = _box(payments, tmp_path)
    box = next(gen)
    try:
        dest = payments.destinations[0]
        assert box.authz is not None
        pid = box.authz.pid
        old = allowed_headers(dest)
        assert box.request(dest.host, old).status == 200
        # The team changes one allowed value and its message: only its TrafficPolicy changes.
        changed = _with_destination(
            payments,
            0,
            require_headers={**dest.authz.require_headers, "x-tenant": ["payments-v2"]},
            deny_message="Use the v2 tenant",
        )
        assert box.reload(changed) == [OWN, FAIL_OPEN, PRINCIPAL]
        r = box.request(dest.host, old)
        assert (r.status, r.body) == (403, b"Use the v2 tenant")
        assert box.request(dest.host, {**old, "x-tenant": "payments-v2"}).status == 200
        # The other destination is untouched.
        other = payments.destinations[1]
        assert box.request(other.host, allowed_headers(other)).status == 200
        # Same server process, started once, its policy files never re-read.
        assert box.authz.pid == pid and box.authz.poll() is None
        assert box.authz_log().count("GRPC Server starting") == 1
    finally:
        next(gen, None)


def _broken(configmap: Obj, text: str, file_name: str = "broken.yaml") -> Obj:
    out = copy.deepcopy(configmap)
    out["data"][file_name] = text
    return out


_ANY_OWNERS = {10001: "team-ml"}
BROKEN_POLICIES = {
    # Does not compile (an unknown function): the whole source is dropped at the first check.
    "uncompilable": authz.policy_file(authz.destination_policy(_ANY_OWNERS)).replace(
        "envoy.Allowed()", "envoy.Allowd()"
    ),
    # Another API version than the files may hold: the v0.4.0 server drops the source, this one the document.
    "wrong-version": authz.policy_file(authz.destination_policy(_ANY_OWNERS))
    .replace("v1alpha1", "v9")
    .replace(authz.DESTINATION_POLICY, "x"),
    # Not YAML at all.
    "garbage": "apiVersion: [unterminated\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN_POLICIES))
def test_a_broken_policy_cannot_open_the_gate(payments: StackConfig, tmp_path: Path, kind: str) -> None:
    """A broken file next to the generic policy: at worst its whole source is dropped, and the
    default deny, alone in its own source, then denies everything, the valid request included.
    No request the destination's rule refuses is ever allowed."""

    def files(owners: Mapping[int, str], grants: Mapping[str, Mapping[str, str]]) -> list[Obj]:
        approvals, generic, deny = authz.platform_configmaps(owners, grants)
        return [approvals, _broken(generic, BROKEN_POLICIES[kind]), deny]

    gen = _box(payments, tmp_path, files)
    box = next(gen)
    try:
        dest = payments.destinations[0]
        ok = allowed_headers(dest)
        refusals = {dest.authz.deny_message, authz.DEFAULT_DENY_MESSAGE}
        r = box.request(dest.host, {})
        assert r.status == 403 and r.body.decode() in refusals, (kind, r)
        other = box.other_listener(box.others[0].name)
        decision = box.check(dest.host, ok, other, box.route_context(dest))
        assert not decision.allowed and decision.body in refusals, (kind, decision)
        decision = box.check("evil.example", ok, OWN, {})
        assert not decision.allowed and decision.body == authz.DEFAULT_DENY_MESSAGE
        valid = box.request(dest.host, ok)
        if kind == "uncompilable":  # the source is dropped: the default deny decides
            assert (valid.status, valid.body) == (403, authz.DEFAULT_DENY_MESSAGE.encode()), valid
        else:  # this server skips the bad document (v0.4.0 drops the source: the default deny decides)
            assert valid.status == 200 or (valid.status, valid.body) == (403, authz.DEFAULT_DENY_MESSAGE.encode())
    finally:
        next(gen, None)


def test_the_generic_policy_replaced_by_a_broken_one_fails_closed(payments: StackConfig, tmp_path: Path) -> None:
    def files(owners: Mapping[int, str], grants: Mapping[str, Mapping[str, str]]) -> list[Obj]:
        approvals, generic, deny = authz.platform_configmaps(owners, grants)
        broken = copy.deepcopy(generic)
        (key,) = broken["data"]
        broken["data"][key] = broken["data"][key].replace("variables.fromOwner &&", "variables.fromOwner &&& ")
        return [approvals, broken, deny]

    gen = _box(payments, tmp_path, files)
    box = next(gen)
    try:
        dest = payments.destinations[0]
        r = box.request(dest.host, allowed_headers(dest))
        assert (r.status, r.body) == (403, authz.DEFAULT_DENY_MESSAGE.encode())
        assert "error compiling" in box.authz_log() or "failed to" in box.authz_log()
    finally:
        next(gen, None)


def test_any_unicode_message_comes_through_byte_exact(payments: StackConfig, tmp_path: Path) -> None:
    cfg = _with_destination(payments, 0, deny_message=TRICKY)
    gen = _box(cfg, tmp_path)
    box = next(gen)
    try:
        dest = cfg.destinations[0]
        r = box.request(dest.host, {})
        assert r.status == 403 and r.body == TRICKY.encode("utf-8"), r
        assert box.request(dest.host, allowed_headers(dest)).status == 200
        # Many more messages straight to the server: every code point class, up to the 512 limit.
        rnd = random.Random(12)
        pools = [(0x20, 0x7E), (0xA0, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]
        for _ in range(40):
            lo, hi = rnd.choice(pools)
            message = "".join(chr(rnd.randint(lo, hi)) for _ in range(rnd.randint(1, 512)))
            message = message.replace("\x00", "")
            context = {**box.route_context(dest), authz.CTX_DENY_MESSAGE: message}
            decision = box.check(dest.host, {}, OWN, context)
            assert decision.http_status == 403 and decision.body == message
    finally:
        next(gen, None)


def test_the_listener_alone_when_no_header_is_required(payments: StackConfig, tmp_path: Path) -> None:
    """A destination without header requirements (the config does not allow it yet: model_copy skips
    validation) is usable from its owner's listener only."""
    cfg = _with_destination(payments, 1, require_headers={})
    assert isinstance(cfg.destinations[1].authz, Authz) and not cfg.destinations[1].authz.require_headers
    gen = _box(cfg, tmp_path)
    box = next(gen)
    try:
        dest = cfg.destinations[1]
        assert box.request(dest.host, {}).status == 200
        other = box.other_listener(box.others[0].name)
        decision = box.check(dest.host, {}, other, box.route_context(dest))
        assert (decision.allowed, decision.http_status, decision.body) == (False, 403, dest.authz.deny_message)
    finally:
        next(gen, None)
