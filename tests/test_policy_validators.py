"""Each CrossGuard validator with compliant, violating, missing-property and config-override cases.

Validators are called directly with hand-built arguments and a collecting report function, the
way pulumi-policy's own tests do; the real engine runs the pack in test_engine_preview.py.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from components.manifests import authz
from components.manifests import destination as builders
from components.settings import config, names
from components.settings.stackfile import load_stack

from .conftest import ROOT, TODAY

sys.path.insert(0, str(ROOT / "policies"))
from egress_policies import pack

SE_TYPE = "kubernetes:networking.istio.io/v1:ServiceEntry"
_OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _args(type_: str, props: Mapping[str, Any], cfg: Mapping[str, Any] | None = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(type_, props, f"urn:pulumi:s::p::{type_}::r", "r", _OPTS, None, cfg or {})


def _run(fn: Callable[..., None], args: Any) -> list[str]:
    out: list[str] = []
    fn(args, lambda message, urn=None: out.append(message))
    return out


def _dev() -> config.StackConfig:
    return load_stack(ROOT / "Pulumi.dev.yaml")


def _approved_entry() -> dict[str, Any]:
    cfg = _dev()
    assert cfg.team is not None
    return builders.service_entry(cfg.team, cfg.destinations[0], ["10.0.0.1"], cfg.approvals[0], TODAY)


class TestApprovedServiceEntries:
    cfg = {"evaluationDate": TODAY.isoformat()}

    def test_compliant(self) -> None:
        assert _run(pack.approved_service_entries, _args(SE_TYPE, _approved_entry(), self.cfg)) == []

    def test_unlabeled_entry_is_reported_with_its_host(self) -> None:
        cfg = _dev()
        assert cfg.team is not None
        obj = builders.service_entry(cfg.team, cfg.destinations[0], ["10.0.0.1"], None, TODAY)
        problems = _run(pack.approved_service_entries, _args(SE_TYPE, obj, self.cfg))
        assert any("ollama.external is not approved" in p for p in problems)
        assert any("lacks approval annotations" in p for p in problems)

    def test_wrong_label_value(self) -> None:
        obj = _approved_entry()
        obj["metadata"]["labels"][names.APPROVED_LABEL] = "yes"
        assert any("is not approved" in p for p in _run(pack.approved_service_entries, _args(SE_TYPE, obj, self.cfg)))

    def test_expired(self) -> None:
        problems = _run(
            pack.approved_service_entries, _args(SE_TYPE, _approved_entry(), {"evaluationDate": "2027-07-01"})
        )
        assert problems == ["approval of external host ollama.external expired on 2027-06-30"]

    def test_missing_metadata_and_location(self) -> None:
        problems = _run(pack.approved_service_entries, _args(SE_TYPE, {"spec": {"hosts": ["a.example"]}}, self.cfg))
        assert any("a.example is not approved" in p for p in problems)

    def test_internal_entries_are_not_governed(self) -> None:
        obj = {"spec": {"hosts": ["svc.internal"], "location": "MESH_INTERNAL"}}
        assert _run(pack.approved_service_entries, _args(SE_TYPE, obj, self.cfg)) == []

    def test_label_key_and_value_from_config(self) -> None:
        obj = _approved_entry()
        del obj["metadata"]["labels"][names.APPROVED_LABEL]
        obj["metadata"]["labels"]["sec.example/ok"] = "yes"
        over = {**self.cfg, "approvalLabel": "sec.example/ok", "approvalValue": "yes"}
        assert _run(pack.approved_service_entries, _args(SE_TYPE, obj, over)) == []
        assert _run(pack.approved_service_entries, _args(SE_TYPE, obj, self.cfg)) != []

    def test_other_types_are_ignored(self) -> None:
        assert _run(pack.approved_service_entries, _args("kubernetes:core/v1:ConfigMap", {}, self.cfg)) == []


def test_wildcard_hosts() -> None:
    assert _run(pack.no_wildcard_hosts, _args(SE_TYPE, {"spec": {"hosts": ["*.openai.com"]}})) == [
        "wildcard host '*.openai.com' is not allowed; name each external host"
    ]
    route = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
    assert _run(pack.no_wildcard_hosts, _args(route, {"spec": {"hostnames": ["*.x"]}})) != []
    assert _run(pack.no_wildcard_hosts, _args(SE_TYPE, {"spec": {"hosts": ["api.openai.com"]}})) == []
    assert _run(pack.no_wildcard_hosts, _args(SE_TYPE, {})) == []


ON_A_ROUTE = {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}]}


def _policy_resource(type_: str, props: Mapping[str, Any], name: str) -> PolicyResource:
    return PolicyResource(type_, props, f"urn:pulumi:s::p::{type_}::{name}", name, _OPTS, None, None, [], {})


def test_every_route_to_a_service_entry_needs_ext_auth() -> None:
    cfg = _dev()
    assert cfg.team is not None
    dest = cfg.destinations[0]
    route = _policy_resource(
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", builders.http_route(cfg.team, dest), "route"
    )
    tp_props = builders.traffic_policy(cfg.team, dest)
    tp = _policy_resource("kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy", tp_props, "tp")
    assert _run(pack.ext_auth_on_every_route, StackValidationArgs([route, tp])) == []
    assert _run(pack.ext_auth_on_every_route, StackValidationArgs([route])) == [
        "HTTPRoute egress-ollama sends traffic to an external host without a TrafficPolicy extAuth"
    ]
    no_auth = copy.deepcopy(tp_props)
    del no_auth["spec"]["extAuth"]
    tp2 = _policy_resource("kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy", no_auth, "tp")
    assert len(_run(pack.ext_auth_on_every_route, StackValidationArgs([route, tp2]))) == 1
    other_ns = copy.deepcopy(tp_props)
    other_ns["metadata"]["namespace"] = "elsewhere"
    tp3 = _policy_resource("kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy", other_ns, "tp")
    assert len(_run(pack.ext_auth_on_every_route, StackValidationArgs([route, tp3]))) == 1


def _path_resources(
    allow_fail_open: bool, fail_open: bool = True, budget: Any = None, ceiling: Any = None
) -> list[PolicyResource]:
    """The dev demo destination's objects, its extension failing open, its approval as given."""
    cfg = _dev()
    assert cfg.team is not None
    dest = cfg.destinations[0].model_copy(update={"fail_open": fail_open, "budget": budget})
    approval = next(a for a in cfg.approvals if a.host == dest.host)
    approval = approval.model_copy(update={"allow_fail_open": allow_fail_open, "rate_limit": ceiling})
    objs = builders.destination_objects(cfg.team, dest, ["192.0.2.10"], approval, TODAY)
    prefix = "kubernetes:networking.istio.io/v1:", "kubernetes:gateway.networking.k8s.io/v1:"
    types = {
        "ServiceEntry": prefix[0] + "ServiceEntry",
        "HTTPRoute": prefix[1] + "HTTPRoute",
        "TrafficPolicy": "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy",
        "GatewayExtension": "kubernetes:gateway.kgateway.dev/v1alpha1:GatewayExtension",
    }
    return [_policy_resource(types[o["kind"]], o, o["kind"]) for o in objs if o["kind"] in types]


def test_a_policy_on_the_gateway_itself_has_no_retries_to_bound() -> None:
    t = "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy"
    on_gateway = {"spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g"}]}}
    assert _run(pack.bounded_retries_and_timeouts, _args(t, on_gateway)) == []
    assert _run(pack.bounded_retries_and_timeouts, _args(t, {"spec": ON_A_ROUTE})) != []


def test_gateway_extension_fails_open_only_where_the_approval_allows_it() -> None:
    assert _run(pack.fail_closed_ext_auth, StackValidationArgs(_path_resources(allow_fail_open=True))) == []
    assert _run(pack.fail_closed_ext_auth, StackValidationArgs(_path_resources(False, fail_open=False))) == []
    assert _run(pack.fail_closed_ext_auth, StackValidationArgs(_path_resources(allow_fail_open=False))) == [
        "GatewayExtension egress-ollama-authz fails open, which no approval of the hosts it guards allows "
        "(security sets allowFailOpen on the approval)"
    ]
    # An extension that fails open and guards nothing is refused too.
    alone = [r for r in _path_resources(allow_fail_open=True) if r.resource_type.endswith(":GatewayExtension")]
    assert len(_run(pack.fail_closed_ext_auth, StackValidationArgs(alone))) == 1


@pytest.mark.parametrize(
    ("budget", "problem"),
    [
        (config.Budget(requests=60, per="1m", burst=10), None),
        (config.Budget(requests=2, per="1s", burst=10), None),  # 120/1m: the ceiling's rate exactly
        (config.Budget(requests=3, per="1s"), "its budget exceeds what security approved"),  # 180/1m
        (config.Budget(requests=60, per="1m", burst=21), "its budget exceeds what security approved"),
        (None, "set a budget within it"),
    ],
)
def test_budgets_keep_within_the_approvals_ceiling(budget: Any, problem: str | None) -> None:
    ceiling = config.Budget(requests=120, per="1m", burst=20)
    found = _run(pack.budgets_within_approvals, StackValidationArgs(_path_resources(False, False, budget, ceiling)))
    assert found == [] if problem is None else (len(found) == 1 and problem in found[0]), found
    # Without a ceiling any budget, or none, passes.
    assert _run(pack.budgets_within_approvals, StackValidationArgs(_path_resources(False, False, budget))) == []


@pytest.mark.parametrize("cm", authz.platform_configmaps({10001: "team-ml"}), ids=lambda cm: cm["metadata"]["name"])
def test_authz_policy_files_fail_closed(cm: dict[str, Any]) -> None:
    assert _run(pack.fail_closed_authz_policies, _args(pack.CONFIG_MAP, cm)) == []
    bad = copy.deepcopy(cm)
    key = next(iter(bad["data"]))
    bad["data"][key] = bad["data"][key].replace("failurePolicy: Fail", "failurePolicy: Ignore")
    assert _run(pack.fail_closed_authz_policies, _args(pack.CONFIG_MAP, bad)) == [
        f"authz policy in {key} must have failurePolicy Fail, got 'Ignore'"
    ]
    assert (
        _run(pack.fail_closed_authz_policies, _args(pack.CONFIG_MAP, {"data": {"x.txt": "kind: ValidatingPolicy"}}))
        == []
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"timeouts": {"request": "30s"}, "retry": {"attempts": 3, "perTryTimeout": "10s"}}, []),
        ({"timeouts": {"request": "30s"}, "retry": {"attempts": 3.0, "perTryTimeout": "10s"}}, []),
        ({"retry": {"attempts": 3, "perTryTimeout": "10s"}}, ["timeouts.request must be set to a duration (e.g. 30s)"]),
        (
            {"timeouts": {"request": "30s"}, "retry": {"attempts": 50, "perTryTimeout": "1s"}},
            ["retry.attempts must be an integer of at most 10, got 50"],
        ),
        (
            {"timeouts": {"request": "5s"}, "retry": {"attempts": 1, "perTryTimeout": "5s"}},
            ["retry.perTryTimeout 5s must be below timeouts.request 5s"],
        ),
        ({"timeouts": {"request": "30s"}, "retry": {"attempts": 1}}, ["retry.perTryTimeout must be set"]),
    ],
)
def test_bounded_retries_and_timeouts(spec: dict[str, Any], expected: list[str]) -> None:
    t = "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy"
    assert _run(pack.bounded_retries_and_timeouts, _args(t, {"spec": {**spec, **ON_A_ROUTE}})) == expected


def test_retry_bound_from_config() -> None:
    t = "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy"
    spec = {"timeouts": {"request": "30s"}, "retry": {"attempts": 3, "perTryTimeout": "10s"}, **ON_A_ROUTE}
    assert _run(pack.bounded_retries_and_timeouts, _args(t, {"spec": spec}, {"maxRetryAttempts": 2})) == [
        "retry.attempts must be an integer of at most 2, got 3"
    ]


@pytest.mark.parametrize(
    ("type_", "props", "ok"),
    [
        (pack.HELM_RELEASE, {"chart": "istiod", "version": "1.30.3"}, True),
        (pack.HELM_RELEASE, {"chart": "istiod"}, False),
        (pack.HELM_RELEASE, {"chart": "istiod", "version": "^1.30"}, False),
        (pack.HELM_CHART, {"chart": "x", "version": "latest"}, False),
        (pack.HELM_CHART, {}, True),  # a preview's Chart whose inputs are not known yet: nothing to judge
        (pack.HELM_RELEASE, {}, False),
        (pack.DOCKER_IMAGE, {"name": "ollama/ollama:0.12.6"}, True),
        (pack.DOCKER_IMAGE, {"name": "ollama/ollama"}, False),
        (pack.DOCKER_IMAGE, {"name": "ollama/ollama:latest"}, False),
        (pack.DOCKER_IMAGE, {"name": "registry:5000/ollama"}, False),
        (pack.DOCKER_IMAGE, {"name": "ollama/ollama@sha256:" + "0" * 64}, True),
    ],
)
def test_pinned_versions(type_: str, props: dict[str, Any], ok: bool) -> None:
    assert (_run(pack.pinned_versions, _args(type_, props)) == []) is ok


def test_pack_is_mandatory_with_every_policy_named() -> None:
    assert pack.ENFORCEMENT_LEVEL.value == "mandatory"
    assert [p.name for p in pack.POLICIES] == [
        "egress-approved-destinations",
        "egress-produced-fields-only",
        "egress-no-wildcard-hosts",
        "egress-ext-auth-on-every-route",
        "egress-ext-auth-fails-closed",
        "egress-budgets-within-approvals",
        "egress-authz-policy-fails-closed",
        "egress-bounded-retries-timeouts",
        "egress-pinned-versions",
    ]
