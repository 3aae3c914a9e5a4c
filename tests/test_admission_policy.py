"""The admission ClusterPolicy: generated from components/manifests/admission.py, valid against the Kyverno CRD,
and applied by the real Kyverno engine to approved and unapproved ServiceEntries."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from components.manifests import destination as builders
from components.manifests.admission import CLUSTER_POLICY_NAME
from components.manifests.admission import cluster_policy as admission_cluster_policy
from components.rules.approval import check_service_entry
from components.settings import names
from components.settings.stackfile import load_stack

from . import kyverno_cli
from .conftest import ROOT
from .kyverno_cli import Case
from .schemas import CelReport, SchemaIndex, validate


def _entries() -> dict[str, dict[str, Any]]:
    cfg = load_stack(ROOT / "Pulumi.dev.yaml")
    assert cfg.team is not None
    dest = cfg.destinations[0]
    today = dt.date.today()
    approved = builders.service_entry(cfg.team, dest, ["10.0.0.1"], cfg.approvals[0], today)
    unapproved = builders.service_entry(cfg.team, dest, ["10.0.0.1"], None, today)
    expired_approval = cfg.approvals[0].model_copy(update={"expires": dt.date(2025, 12, 31)})
    expired = builders.service_entry(cfg.team, dest, ["10.0.0.1"], expired_approval, today)
    hand_labeled = copy.deepcopy(unapproved)  # someone sets the label by hand, without an approval
    hand_labeled["metadata"]["labels"][names.APPROVED_LABEL] = names.APPROVED_VALUE
    wildcard = copy.deepcopy(approved)
    wildcard["spec"]["hosts"] = ["*.corp.example"]
    internal = copy.deepcopy(unapproved)
    internal["spec"]["location"] = "MESH_INTERNAL"
    out = {
        "approved": approved,
        "unapproved": unapproved,
        "expired": expired,
        "hand-labeled": hand_labeled,
        "wildcard": wildcard,
        "internal": internal,
    }
    for name, obj in out.items():
        obj["metadata"]["name"] = name
    return out


def test_cluster_policy_validates_against_the_kyverno_crd(crds_dir: Path) -> None:
    report = CelReport()
    errors = validate(SchemaIndex.load(crds_dir), admission_cluster_policy(), report)
    assert errors == []
    assert report.failures == []


def test_cluster_policy_governs_every_external_entry() -> None:
    policy = admission_cluster_policy()
    spec = policy["spec"]
    assert spec["background"] is True
    assert spec["validationFailureAction"] == "Enforce"
    for rule in spec["rules"]:
        kinds = rule["match"]["any"][0]["resources"]
        assert kinds == {"kinds": ["networking.istio.io/*/ServiceEntry"]}  # no name, no namespace: all of them
    label_rule = spec["rules"][0]["validate"]["deny"]["conditions"]["any"][0]
    assert label_rule["value"] == names.APPROVED_VALUE and label_rule["operator"] == "NotEquals"


def test_preview_rules_agree_with_admission_expectations() -> None:
    """The CrossGuard check (same rule definitions) judges the same entries the same way."""
    today = dt.date.today()
    verdicts = {name: not check_service_entry(obj, today) for name, obj in _entries().items()}
    assert verdicts == {
        "approved": True,
        "unapproved": False,
        "expired": False,
        "hand-labeled": False,
        "wildcard": True,  # approval-wise fine; the wildcard rule rejects it
        "internal": True,
    }


ADMISSION = [
    ("approved", "require-approval-label", "pass"),
    ("approved", "require-approval-annotations", "pass"),
    ("approved", "reject-expired-approval", "pass"),
    ("unapproved", "require-approval-label", "fail"),
    ("unapproved", "require-approval-annotations", "fail"),
    ("expired", "require-approval-label", "fail"),
    ("expired", "reject-expired-approval", "fail"),
    ("hand-labeled", "require-approval-label", "pass"),
    ("hand-labeled", "require-approval-annotations", "fail"),
    ("wildcard", "reject-wildcard-hosts", "fail"),
    ("internal", "require-approval-label", "skip"),
]


@pytest.mark.skipif(kyverno_cli.kyverno_bin() is None, reason="needs the Kyverno CLI from scripts/bootstrap.sh")
def test_kyverno_engine_rejects_unapproved_and_admits_approved(tmp_path: Path) -> None:
    entries = _entries()
    policy = admission_cluster_policy()
    cases = [
        Case(f"{name}-{rule}", policy, expected, resources=[entries[name]], rule=rule)
        for name, rule, expected in ADMISSION
    ]
    out = kyverno_cli.run(tmp_path, cases)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Test Summary: {len(ADMISSION)} tests passed and 0 tests failed" in out.stdout, out.stdout
    assert CLUSTER_POLICY_NAME in out.stdout
