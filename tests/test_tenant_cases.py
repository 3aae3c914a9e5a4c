"""The tenant cases (tests/tenant_cases.py) themselves, and the engine that needs no cluster: each case
changes one of the team's own objects into one the pinned CRD schema accepts (or the API server would
refuse it before admission, proving nothing), and the CrossGuard pack's resource checks refuse every
case marked `pack`. The admission controller and `kyverno test` decide every case elsewhere."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from components.manifests.destination import resource_name
from components.manifests.stack import stack_objects
from components.settings.stackfile import load_stack

from .conftest import ROOT, TODAY
from .schemas import CelReport, SchemaIndex, validate
from .tenant_cases import CASES, Case, apply

sys.path.insert(0, str(ROOT / "policies"))
from egress_policies import pack

PLATFORM = load_stack(ROOT / "Pulumi.dev.yaml")


def base(case: Case) -> dict[str, Any]:
    """The team's own object the case starts from (its first destination's, or the one it names)."""
    cfg = load_stack(ROOT / f"Pulumi.team-{case.team}.yaml")
    dest = next(d for d in cfg.destinations if case.destination in (None, d.name))
    objs = stack_objects(cfg, TODAY, PLATFORM.approvals).all()
    prefix = resource_name(dest)
    return next(o for o in objs if o["kind"] == case.kind and o["metadata"]["name"].startswith(prefix))


def name_of(case: Case) -> str:
    return f"case-{case.id}".lower()[:63]


def attempt(case: Case, backend: str | None = None) -> dict[str, Any]:
    """The case's object under a name of its own: a route names, and a policy targets, the TrafficPolicy
    and route of that name (the pairing the product keeps), a route sends to `backend` where given;
    then the case's changes."""
    obj = copy.deepcopy(base(case))
    obj["metadata"]["name"] = name_of(case)
    if case.kind == "HTTPRoute":
        for rule in obj["spec"]["rules"]:
            for f in rule.get("filters", []):
                f["extensionRef"]["name"] = name_of(case)
            for b in rule["backendRefs"]:
                b["name"] = backend or b["name"]
    if case.kind == "TrafficPolicy":
        obj["spec"]["targetRefs"][0]["name"] = name_of(case)
    return apply(obj, case.ops)


def route_policy_for(case: Case) -> dict[str, Any] | None:
    """For a route case, the team's own TrafficPolicy renamed to pair with the case's route (admission
    admits a route only once its policy exists); None for other kinds."""
    if case.kind != "HTTPRoute":
        return None
    tp = copy.deepcopy(base(Case(case.id, "TrafficPolicy", [], "", case.team, case.destination)))
    tp["metadata"]["name"] = tp["spec"]["targetRefs"][0]["name"] = name_of(case)
    return tp


@pytest.fixture(scope="module")
def index(crds_dir: Path) -> SchemaIndex:
    return SchemaIndex.load(crds_dir)


def test_every_class_of_the_review_has_cases() -> None:
    from .tenant_cases import ESCAPE, FRONTING, SCOPE, SHARED, UNREVIEWED

    classes = {c for case in CASES for c in case.classes}
    assert classes == {ESCAPE, FRONTING, UNREVIEWED, SHARED, SCOPE}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_case_is_one_the_schema_accepts(index: SchemaIndex, case: Case) -> None:
    obj = attempt(case)
    assert obj != base(case)
    report = CelReport()
    assert validate(index, obj, report) == [], case.id
    assert not report.failures, (case.id, report.failures)


def _type(kind: str, api_version: str) -> str:
    return f"kubernetes:{api_version}:{kind}"


def _resource_checks(obj: dict[str, Any]) -> list[str]:
    """What the pack's resource policies report on one object (the engine calls them so at preview)."""
    from pulumi_policy import ResourceValidationPolicy

    from .test_policy_validators import _args, _run

    args = _args(_type(obj["kind"], obj["apiVersion"]), obj)
    out = []
    for policy in pack.POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            validate: Any = policy.validate
            out += _run(validate, args)
    return out


@pytest.mark.parametrize("case", [c for c in CASES if c.pack], ids=lambda c: c.id)
def test_the_packs_resource_checks_refuse_it(case: Case) -> None:
    assert _resource_checks(attempt(case)), case.id
    assert _resource_checks(base(case)) == []  # the team's own object passes the same checks
