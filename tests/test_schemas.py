"""Every object the example stacks create, checked against the pinned upstream CRD schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests import destination as builders
from components.manifests.stack import stack_objects
from components.settings import names
from components.settings.stackfile import load_stack

from .conftest import STACK_FILES, TODAY
from .schemas import CelReport, SchemaIndex, validate

# Core Kubernetes kinds have no CRD; they are created through pulumi-kubernetes' typed classes.
# Built-in kinds: no CRD schema; the real API server checks them in test_lifecycle.py and
# test_tenant_boundary.py.
CORE_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}


@pytest.fixture(scope="module")
def index(crds_dir: Path) -> SchemaIndex:
    return SchemaIndex.load(crds_dir)


def _objects(path: Path) -> list[dict[str, Any]]:
    cfg = load_stack(path)
    objs = stack_objects(cfg, TODAY).all()
    # Authz policies travel as files in ConfigMaps: check each file as the object it is.
    for o in list(objs):
        if o["kind"] == "ConfigMap" and o["metadata"].get("namespace") == names.AUTHZ_NAMESPACE:
            objs += [yaml.safe_load(text) for text in o["data"].values()]
    return objs


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_rendered_objects_match_schemas_and_cel_rules(index: SchemaIndex, path: Path) -> None:
    report = CelReport()
    problems: list[str] = []
    checked = 0
    for obj in _objects(path):
        if (obj["apiVersion"], obj["kind"]) in CORE_KINDS:
            continue
        problems += [f"{obj['kind']}/{obj['metadata']['name']}: {e}" for e in validate(index, obj, report)]
        checked += 1
    assert not problems, "\n".join(problems)
    assert not report.failures, "\n".join(report.failures)
    assert checked >= 5
    assert report.evaluated > 0


def test_kinds_covered(index: SchemaIndex) -> None:
    kinds = {o["kind"] for p in STACK_FILES for o in _objects(p)}
    assert {
        "ServiceEntry",
        "HTTPRoute",
        "TrafficPolicy",
        "GatewayExtension",
        "BackendConfigPolicy",
        "Gateway",
        "ListenerPolicy",
        "ReferenceGrant",
        "ValidatingPolicy",
        "ClusterPolicy",
        "ListenerSet",
        "AuthorizationPolicy",
        "PeerAuthentication",
    } <= kinds


def _gateway_extension() -> dict[str, Any]:
    cfg = load_stack(STACK_FILES[0])
    assert cfg.team is not None
    return builders.gateway_extension(cfg.team, cfg.destinations[0])


def test_unknown_field_is_an_error(index: SchemaIndex) -> None:
    obj = _gateway_extension()
    obj["spec"]["extAuth"]["failopen"] = True  # misspelt: the API server would drop it silently
    errors = validate(index, obj, CelReport())
    assert any("failopen" in e for e in errors), errors


def test_cel_rule_violation_is_reported(index: SchemaIndex) -> None:
    obj = _gateway_extension()
    del obj["spec"]["extAuth"]
    report = CelReport()
    validate(index, obj, report)
    assert any("extAuth must be set when type is ExtAuth" in f for f in report.failures), report.failures


def test_bad_duration_is_caught_by_the_crd_rule(index: SchemaIndex) -> None:
    cfg = load_stack(STACK_FILES[0])
    assert cfg.team is not None
    obj = copy.deepcopy(builders.traffic_policy(cfg.team, cfg.destinations[0]))
    obj["spec"]["timeouts"]["request"] = "1.5s"
    report = CelReport()
    validate(index, obj, report)
    assert any("invalid duration" in f for f in report.failures), report.failures


# --- the platform at its design size ----------------------------------------------------------------
TEAMS_AT_SCALE = 500  # the design holds this many teams on one platform (README, "Many teams")


def _platform_with_teams(n: int) -> Any:
    from components.settings import config
    from devenv.scale import platform_config

    return config.parse(platform_config(n))


def test_a_platform_of_500_teams_renders_and_matches_the_schemas(index: SchemaIndex) -> None:
    """One ListenerSet per team (a Gateway holds at most 64 listeners; each ListenerSet one, so the
    Gateway stays at its own), every team's rule in one AuthorizationPolicy (at most 512 rules), the
    port map in the one authorization policy."""
    objs = stack_objects(_platform_with_teams(TEAMS_AT_SCALE), TODAY).all()
    for o in list(objs):
        if o["kind"] == "ConfigMap" and o["metadata"].get("namespace") == names.AUTHZ_NAMESPACE:
            objs += [yaml.safe_load(text) for text in o["data"].values()]
    report = CelReport()
    problems = [
        f"{o['kind']}/{o['metadata']['name']}: {e}"
        for o in objs
        if (o["apiVersion"], o["kind"]) not in CORE_KINDS
        for e in validate(index, o, report)
    ]
    assert not problems, "\n".join(problems[:20])
    assert not report.failures, "\n".join(report.failures[:20])
    kinds = [o["kind"] for o in objs]
    assert kinds.count("ListenerSet") == TEAMS_AT_SCALE and kinds.count("Gateway") == 1
    (policy,) = [o for o in objs if o["kind"] == "AuthorizationPolicy"]
    assert len(policy["spec"]["rules"]) == TEAMS_AT_SCALE
    ports = sorted(ls["spec"]["listeners"][0]["port"] for ls in objs if ls["kind"] == "ListenerSet")
    assert ports == list(range(10000, 10000 + TEAMS_AT_SCALE))


def test_past_512_teams_the_rules_spread_over_more_policies() -> None:
    from components.manifests import mesh

    policies = mesh.listener_authorization(_platform_with_teams(600).teams)
    assert [len(p["spec"]["rules"]) for p in policies] == [mesh.MAX_RULES, 600 - mesh.MAX_RULES]
    assert len({p["metadata"]["name"] for p in policies}) == 2
    # No team: one policy without rules, which refuses every connection.
    assert [p["spec"]["rules"] for p in mesh.listener_authorization([])] == [[]]
