"""The policies of the pack, their config schemas and default enforcement (mandatory)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.rules import allowlist, approval, budgets, fail_open, routes
from components.rules.bounds import check_retries_and_timeouts
from components.settings import names, versions
from components.settings.config import MAX_RETRY_ATTEMPTS

PACK_NAME = "egress-governance"
ENFORCEMENT_LEVEL = EnforcementLevel.MANDATORY

SERVICE_ENTRY = ("kubernetes:networking.istio.io/", ":ServiceEntry")
HTTP_ROUTE = ("kubernetes:gateway.networking.k8s.io/", ":HTTPRoute")
TRAFFIC_POLICY = ("kubernetes:gateway.kgateway.dev/", ":TrafficPolicy")
GATEWAY_EXTENSION = ("kubernetes:gateway.kgateway.dev/", ":GatewayExtension")
BACKEND_CONFIG_POLICY = ("kubernetes:gateway.kgateway.dev/", ":BackendConfigPolicy")
TEAM_KINDS = (SERVICE_ENTRY, HTTP_ROUTE, TRAFFIC_POLICY, GATEWAY_EXTENSION, BACKEND_CONFIG_POLICY)
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART = "kubernetes:helm.sh/v4:Chart"
DOCKER_IMAGE = "docker:index/remoteImage:RemoteImage"


def _is(type_: str, kind: tuple[str, str]) -> bool:
    return type_.startswith(kind[0]) and type_.endswith(kind[1])


def _config(args: Any) -> Mapping[str, Any]:
    return args.get_config() or {}


def _today(cfg: Mapping[str, Any]) -> dt.date:
    # `evaluationDate` lets a pipeline ask "would this still pass on date X?".
    value = cfg.get("evaluationDate")
    return dt.date.fromisoformat(value) if value else dt.date.today()


def _approval_rule(cfg: Mapping[str, Any]) -> approval.ApprovalRule:
    return approval.ApprovalRule(
        label=cfg.get("approvalLabel", names.APPROVED_LABEL), value=cfg.get("approvalValue", names.APPROVED_VALUE)
    )


def approved_service_entries(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is(args.resource_type, SERVICE_ENTRY):
        return
    cfg = _config(args)
    for problem in approval.check_service_entry(args.props, _today(cfg), _approval_rule(cfg)):
        report(problem, None)


def no_wildcard_hosts(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = args.props.get("spec") or {}
    if _is(args.resource_type, SERVICE_ENTRY):
        hosts = spec.get("hosts") or []
    elif _is(args.resource_type, HTTP_ROUTE):
        hosts = spec.get("hostnames") or []
    else:
        return
    for host in approval.wildcard_hosts(hosts):
        report(f"wildcard host '{host}' is not allowed; name each external host", None)


def produced_fields_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """The kinds a team writes carry only the fields the product produces (rules/allowlist.py)."""
    if not any(_is(args.resource_type, k) for k in TEAM_KINDS):
        return
    for problem in allowlist.check(args.props):
        report(problem, None)


def ext_auth_on_every_route(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every HTTPRoute to a ServiceEntry is covered by a TrafficPolicy with extAuth."""
    covered: set[tuple[str, str]] = set()
    for r in args.resources:
        if _is(r.resource_type, TRAFFIC_POLICY):
            spec = r.props.get("spec") or {}
            ns = (r.props.get("metadata") or {}).get("namespace", "")
            if routes.has_ext_auth(spec):
                covered.update((ns, name) for name in routes.route_targets(spec))
    for r in args.resources:
        if not _is(r.resource_type, HTTP_ROUTE):
            continue
        meta = r.props.get("metadata") or {}
        if (
            routes.routes_to_service_entry(r.props.get("spec") or {})
            and (meta.get("namespace", ""), meta.get("name")) not in covered
        ):
            report(
                f"HTTPRoute {meta.get('name')} sends traffic to an external host without a TrafficPolicy extAuth", r.urn
            )


def fail_closed_ext_auth(args: StackValidationArgs, report: ReportViolation) -> None:
    """An extension fails open only where the approval of every host it guards allows it."""
    kinds = (SERVICE_ENTRY, HTTP_ROUTE, TRAFFIC_POLICY, GATEWAY_EXTENSION)
    objs = [r.props for r in args.resources if any(_is(r.resource_type, k) for k in kinds)]
    for problem in fail_open.unapproved_fail_open(objs):
        report(problem, None)


def budgets_within_approvals(args: StackValidationArgs, report: ReportViolation) -> None:
    """A destination whose approval sets a ceiling carries a budget within it."""
    kinds = (SERVICE_ENTRY, HTTP_ROUTE, TRAFFIC_POLICY)
    objs = [r.props for r in args.resources if any(_is(r.resource_type, k) for k in kinds)]
    for problem in budgets.budgets_over_ceilings(objs):
        report(problem, None)


def fail_closed_authz_policies(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Authz ValidatingPolicies travel as files in ConfigMaps; each must fail closed."""
    if args.resource_type != CONFIG_MAP:
        return
    import yaml

    for file_name, text in (args.props.get("data") or {}).items():
        if not isinstance(text, str) or not file_name.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == "ValidatingPolicy":
                policy = (doc.get("spec") or {}).get("failurePolicy")
                if policy != "Fail":
                    report(f"authz policy in {file_name} must have failurePolicy Fail, got {policy!r}", None)


def bounded_retries_and_timeouts(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A destination's route policy (one that attaches to HTTPRoutes); the gateway-wide default
    authorization policy sends nothing upstream, so it has no retries or timeouts to bound."""
    if not _is(args.resource_type, TRAFFIC_POLICY) or not routes.route_targets(args.props.get("spec") or {}):
        return
    limit = int(_config(args).get("maxRetryAttempts", MAX_RETRY_ATTEMPTS))
    for problem in check_retries_and_timeouts(args.props.get("spec") or {}, limit):
        report(problem, None)


def pinned_versions(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    chart = args.resource_type in (HELM_RELEASE, HELM_CHART)
    # During a preview the engine hands the pack no inputs of a helm.sh/v4 Chart whose values are not
    # known yet (the authz chart's webhook certificate): nothing to judge then. Its version comes from
    # the same pins, which config validation requires to be exact.
    if args.resource_type == HELM_CHART and props.get("chart") is None:
        return
    if chart and not versions.is_pinned_version(props.get("version")):
        report(f"Helm chart {props.get('chart')} must pin an exact version, got {props.get('version')!r}", None)
    if args.resource_type == DOCKER_IMAGE and not versions.is_pinned_image(props.get("name")):
        report(f"container image {props.get('name')!r} must be pinned by tag or digest (not latest)", None)


def _resource(
    name: str, description: str, fn: Callable[..., None], schema: dict[str, Any] | None = None
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=fn,
        config_schema=PolicyConfigSchema(properties=schema) if schema else None,
    )


_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    _resource(
        "egress-approved-destinations",
        "Every MESH_EXTERNAL ServiceEntry carries the approval label and unexpired approval annotations.",
        approved_service_entries,
        {"approvalLabel": {"type": "string"}, "approvalValue": {"type": "string"}, "evaluationDate": _DATE},
    ),
    _resource(
        "egress-produced-fields-only",
        "ServiceEntries, routes and kgateway policies carry only the fields the platform produces.",
        produced_fields_only,
    ),
    _resource("egress-no-wildcard-hosts", "External hosts and route hostnames are never wildcards.", no_wildcard_hosts),
    StackValidationPolicy(
        name="egress-ext-auth-on-every-route",
        description="Every HTTPRoute to a ServiceEntry is covered by a TrafficPolicy with extAuth.",
        validate=ext_auth_on_every_route,
    ),
    StackValidationPolicy(
        name="egress-ext-auth-fails-closed",
        description="GatewayExtension extAuth.failOpen is false unless the approval of every host it guards allows it.",
        validate=fail_closed_ext_auth,
    ),
    StackValidationPolicy(
        name="egress-budgets-within-approvals",
        description="Where an approval caps a host's rate, the destination's budget keeps within it.",
        validate=budgets_within_approvals,
    ),
    _resource(
        "egress-authz-policy-fails-closed", "Authz policies have failurePolicy Fail.", fail_closed_authz_policies
    ),
    _resource(
        "egress-bounded-retries-timeouts",
        "TrafficPolicies bound retries and set a request timeout above the per-try timeout.",
        bounded_retries_and_timeouts,
        {"maxRetryAttempts": {"type": "integer", "minimum": 0}},
    ),
    _resource("egress-pinned-versions", "Helm charts and container images are pinned.", pinned_versions),
]
