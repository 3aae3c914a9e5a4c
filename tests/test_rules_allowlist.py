"""The per-kind allowlist (components/rules/allowlist.py) against the pinned CRD schemas and the
objects the product builds: every allowed path exists in the schema, the product's own objects use only
allowed paths, and a field the schema has but no rule allows is refused (by the pack's check here; by
admission as the tenant: the tenant cases in test_tenant_boundary.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.manifests.kinds import GATEWAY_API, KGATEWAY_API, SERVICE_ENTRY_API
from components.manifests.stack import stack_objects
from components.rules import allowlist
from components.settings.stackfile import load_stack

from .conftest import STACK_FILES, TODAY
from .schemas import SchemaIndex

API = {
    "ServiceEntry": SERVICE_ENTRY_API,
    "HTTPRoute": GATEWAY_API,
    "TrafficPolicy": KGATEWAY_API,
    "GatewayExtension": KGATEWAY_API,
    "BackendConfigPolicy": KGATEWAY_API,
}


@pytest.fixture(scope="module")
def index(crds_dir: Path) -> SchemaIndex:
    return SchemaIndex.load(crds_dir)


def _schema_paths(schema: dict[str, Any], path: str = "spec") -> Iterator[str]:
    """Every path the CRD schema declares below `path` (lists as `[]`)."""
    if schema.get("type") == "array" and "items" in schema:
        yield from _schema_paths(schema["items"], f"{path}[]")
        return
    for key, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{key}"
        yield from _schema_paths(sub, f"{path}.{key}")


def _declared(index: SchemaIndex, kind: str) -> set[str]:
    schema = index.schemas[(API[kind], kind)]
    return set(_schema_paths(schema["properties"]["spec"]))


@pytest.mark.parametrize("kind", sorted(allowlist.SPECS))
def test_every_allowed_field_is_in_the_pinned_schema(index: SchemaIndex, kind: str) -> None:
    allowed = set(allowlist.allowed_paths(allowlist.SPECS[kind]))
    missing = sorted(allowed - _declared(index, kind))
    assert not missing, f"{kind}: allowed but not in the pinned CRD: {missing}"


@pytest.mark.parametrize("kind", sorted(allowlist.SPECS))
def test_most_of_each_schema_is_refused(index: SchemaIndex, kind: str) -> None:
    """The allowlist is a small part of each schema: what it leaves out is refused (a new CRD field too)."""
    declared, allowed = _declared(index, kind), set(allowlist.allowed_paths(allowlist.SPECS[kind]))
    refused = declared - allowed
    assert refused and len(allowed) < len(declared), kind


def _defaults(schema: dict[str, Any], path: str = "spec") -> Iterator[tuple[str, Any]]:
    if "default" in schema:
        yield path, schema["default"]
    if schema.get("type") == "array" and "items" in schema:
        yield from _defaults(schema["items"], f"{path}[]")
    for key, sub in (schema.get("properties") or {}).items():
        yield from _defaults(sub, f"{path}.{key}")


def _shape_at(kind: str, path: str) -> allowlist.Shape | None:
    shape: allowlist.Shape | None = allowlist.SPECS[kind]
    for step in path.removeprefix("spec.").replace("[]", ".[]").split("."):
        if step == "[]":
            shape = shape.item if isinstance(shape, allowlist.Items) else None
        else:
            shape = shape.keys.get(step) if isinstance(shape, allowlist.Fields) else None
        if shape is None:
            return None
    return shape


@pytest.mark.parametrize("kind", sorted(allowlist.SPECS))
def test_what_the_api_server_defaults_is_allowed_at_its_default(index: SchemaIndex, kind: str) -> None:
    """The API server fills CRD defaults in before admission sees an object: below every level the
    product writes, a defaulted field is allowed (Fixed: with that value only), or the product's own
    objects would be refused."""
    spec = index.schemas[(API[kind], kind)]["properties"]["spec"]
    allowed = {p.removesuffix("[]") for p in allowlist.allowed_paths(allowlist.SPECS[kind])} | {"spec"}
    for path, default in _defaults(spec):
        parent = path.rsplit(".", 1)[0].removesuffix("[]")
        if parent not in allowed or path.endswith("[]") or isinstance(_shape_at(kind, parent), allowlist.Fixed):
            continue  # not below a level the product writes, or within a field allowed only at its default
        shape = _shape_at(kind, path)
        assert shape is not None, f"{kind} {path} is defaulted to {default!r} by the API server but not allowed"
        if isinstance(shape, allowlist.Fixed):
            assert shape.value == default, (path, shape.value, default)


def _product_objects() -> list[dict[str, Any]]:
    out = []
    for path in STACK_FILES:
        out += [o for o in stack_objects(load_stack(path), TODAY).all() if o["kind"] in allowlist.SPECS]
    return out


def test_the_products_own_objects_use_only_allowed_fields() -> None:
    objs = _product_objects()
    assert {o["kind"] for o in objs} == set(allowlist.SPECS)
    for obj in objs:
        assert allowlist.unexpected_fields(obj) == [], (obj["kind"], obj["metadata"]["name"])


# Fields nobody reviewed, each the schema has: the pack names the path.
UNREVIEWED = [
    ("TrafficPolicy", ["extProc"], {"extensionRef": {"name": "x"}}),
    ("TrafficPolicy", ["jwtAuth"], {"extensionRef": {"name": "x"}}),
    ("TrafficPolicy", ["oauth2"], {"extensionRef": {"name": "x"}}),
    ("TrafficPolicy", ["buffer"], {"maxRequestSize": "4Gi"}),
    ("TrafficPolicy", ["urlRewrite"], {"pathRegex": {"pattern": ".*", "substitution": "/"}}),
    ("TrafficPolicy", ["transformation"], {"request": {"set": [{"name": "host", "value": "other.example"}]}}),
    ("TrafficPolicy", ["rateLimit", "global"], {"extensionRef": {"name": "other"}, "descriptors": []}),
    ("TrafficPolicy", ["rateLimit", "local", "percentEnforced"], 0),
    ("HTTPRoute", ["rules", 0, "matches"], [{"path": {"type": "PathPrefix", "value": "/admin"}}]),
    ("ServiceEntry", ["ports", 0, "targetPort"], 8443),
    ("ServiceEntry", ["workloadSelector"], {"labels": {"app": "x"}}),
    ("ServiceEntry", ["addresses"], ["10.0.0.1"]),
    ("BackendConfigPolicy", ["tls", "parameters"], {"tlsMinVersion": "1.0"}),
    ("BackendConfigPolicy", ["tls", "insecureSkipVerify"], True),
]


def _set(obj: dict[str, Any], path: list[Any], value: Any) -> str:
    here: Any = obj["spec"]
    for step in path[:-1]:
        here = here.setdefault(step, {}) if isinstance(step, str) else here[step]
    here[path[-1]] = value
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


@pytest.mark.parametrize(("kind", "path", "value"), UNREVIEWED, ids=lambda v: v if isinstance(v, str) else None)
def test_an_unreviewed_field_is_refused_by_the_pack_check(
    index: SchemaIndex, kind: str, path: list[Any], value: Any
) -> None:
    import copy

    declared = "spec" + "".join("[]" if isinstance(p, int) else f".{p}" for p in path)
    assert declared in _declared(index, kind), f"{declared} is not a field of the pinned {kind} CRD"

    https = [o for o in _product_objects() if o["kind"] == kind and "https" in str(o)] or [
        o for o in _product_objects() if o["kind"] == kind
    ]
    obj = copy.deepcopy(https[0])
    where = _set(obj, path, value)
    problems = allowlist.check(obj)
    assert len(problems) == 1 and where in problems[0], problems


def _levels_in(shape: allowlist.Shape) -> int:
    """Objects and defaulted fields in a shape: each has a validation of its own."""
    if isinstance(shape, allowlist.Items):
        return _levels_in(shape.item)
    if isinstance(shape, allowlist.Fields):
        return 1 + sum(_levels_in(s) for s in shape.keys.values())
    return 1 if isinstance(shape, allowlist.Fixed) else 0


@pytest.mark.parametrize("kind", sorted(allowlist.SPECS))
def test_admission_cel_has_one_validation_per_object_level(kind: str) -> None:
    """The top level, then one per object (and defaulted field) of the spec's shape, each naming its path
    and what it allows."""
    validations = allowlist.cel_validations(kind)
    assert len(validations) == 1 + _levels_in(allowlist.SPECS[kind])
    if kind == "HTTPRoute":
        messages = [m for _, m in validations]
        assert "HTTPRoute spec.rules[].filters[] may hold only type, extensionRef" in " | ".join(messages)
