"""Allowlist: in a team's namespace, each kind a team may write carries only the fields the product
itself produces (components/manifests/destination.py). A field is refused until a rule here allows it:
a new CRD field, or one nobody reviewed (extProc, jwtAuth, buffer, faultInjection, URLRewrite, ...),
never reaches the shared gateway.

One shape per kind, two engines: `cel_validations` renders it as admission CEL (one validation per
object level, naming the path and what it allows), `unexpected_fields` checks it in Python for the
CrossGuard pack. tests/test_rules_allowlist.py checks every allowed path against the pinned CRD schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

RULE = "allowlist"


@dataclass(frozen=True)
class Fields:
    """An object with only these keys (each with its own shape)."""

    keys: Mapping[str, Shape]


@dataclass(frozen=True)
class Items:
    """A list whose items have this shape."""

    item: Shape


class Value:
    """A scalar, or a map of strings the product fills with data (route context): not descended."""


VALUE = Value()


@dataclass(frozen=True)
class Fixed:
    """A field the product never sets and the API server fills with its CRD default: only that value."""

    value: Any


Shape = Fields | Items | Value | Fixed


def _fields(**keys: Shape) -> Fields:
    return Fields(keys)


_TARGET_REF = _fields(group=VALUE, kind=VALUE, name=VALUE)  # never sectionName: it must match nothing else

# The spec of each kind a team may write, as destination.py builds it.
SPECS: dict[str, Fields] = {
    "ServiceEntry": _fields(
        hosts=VALUE,
        location=VALUE,
        ports=Items(_fields(number=VALUE, name=VALUE, protocol=VALUE)),  # never targetPort
        resolution=VALUE,
        endpoints=Items(_fields(address=VALUE)),  # never ports, labels, network, weight, serviceAccount
    ),
    "HTTPRoute": _fields(
        parentRefs=Items(_fields(group=VALUE, kind=VALUE, name=VALUE, namespace=VALUE, sectionName=VALUE)),
        hostnames=VALUE,
        rules=Items(
            _fields(
                matches=Fixed([{"path": {"type": "PathPrefix", "value": "/"}}]),  # every request of the host
                filters=Items(_fields(type=VALUE, extensionRef=_fields(group=VALUE, kind=VALUE, name=VALUE))),
                backendRefs=Items(_fields(group=VALUE, kind=VALUE, name=VALUE, port=VALUE, weight=Fixed(1))),
            )
        ),
    ),
    "TrafficPolicy": _fields(
        targetRefs=Items(_TARGET_REF),
        timeouts=_fields(request=VALUE),
        retry=_fields(
            attempts=VALUE, perTryTimeout=VALUE, statusCodes=VALUE, retryOn=VALUE, backoffBaseInterval=Fixed("25ms")
        ),
        extAuth=_fields(extensionRef=_fields(name=VALUE), contextExtensions=VALUE),
        rateLimit=_fields(local=_fields(tokenBucket=_fields(maxTokens=VALUE, tokensPerFill=VALUE, fillInterval=VALUE))),
        headerModifiers=_fields(
            request=_fields(set=Items(_fields(name=VALUE, secretRef=_fields(name=VALUE, namespace=VALUE, key=VALUE))))
        ),
    ),
    "GatewayExtension": _fields(
        type=VALUE,
        extAuth=_fields(
            failOpen=VALUE,
            grpcService=_fields(
                backendRef=_fields(
                    name=VALUE, namespace=VALUE, port=VALUE, group=Fixed(""), kind=Fixed("Service"), weight=Fixed(1)
                ),
                requestTimeout=VALUE,
            ),
            clearRouteCache=Fixed(False),
            statusOnError=Fixed(403),
        ),
    ),
    "BackendConfigPolicy": _fields(
        targetRefs=Items(_TARGET_REF),
        tls=_fields(sni=VALUE, wellKnownCACertificates=VALUE, verifySubjectAltNames=VALUE),
    ),
}
# Never anything else. `status` is the controllers' (the API server ignores a client's status on the main
# resource of these CRDs, and keeps the old one in an update's object).
TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


def allowed_paths(shape: Shape, path: str = "spec") -> Iterator[str]:
    """Every path the shape allows, lists as `[]` (`spec.rules[].filters[].type`)."""
    if isinstance(shape, Fields):
        for key, sub in shape.keys.items():
            yield f"{path}.{key}"
            yield from allowed_paths(sub, f"{path}.{key}")
    elif isinstance(shape, Items):
        yield from allowed_paths(shape.item, f"{path}[]")


# --- Python, for the pack ----------------------------------------------------------------------------


def unexpected_fields(obj: Mapping[str, Any]) -> list[str]:
    """Paths in `obj` (one object of a kind in SPECS) that its shape does not allow, e.g.
    `spec.rules[0].filters[0].urlRewrite`."""
    out = [k for k in obj if k not in TOP_LEVEL]
    shape = SPECS.get(str(obj.get("kind")))
    if shape is not None:
        out += list(_unexpected(obj.get("spec"), shape, "spec"))
    return out


def _unexpected(value: Any, shape: Shape, path: str) -> Iterator[str]:
    if isinstance(shape, Fields) and isinstance(value, Mapping):
        for key, sub in value.items():
            if key not in shape.keys:
                yield f"{path}.{key}"
            else:
                yield from _unexpected(sub, shape.keys[key], f"{path}.{key}")
    elif isinstance(shape, Items) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unexpected(item, shape.item, f"{path}[{i}]")
    elif isinstance(shape, Fixed) and value != shape.value:
        yield f"{path} (other than its default {json.dumps(shape.value)})"


def check(obj: Mapping[str, Any]) -> list[str]:
    """The pack's violations for one object: one per field the product never produces."""
    kind = obj.get("kind")
    return [
        f"{kind} field {path} is not one the platform produces; only reviewed fields reach the shared gateway"
        for path in unexpected_fields(obj)
    ]


# --- CEL, for admission ------------------------------------------------------------------------------


def _cel_list(keys: Any) -> str:
    return "[" + ", ".join(f'"{k}"' for k in keys) + "]"


def _levels(shape: Shape, expr: str, path: str, depth: int, guards: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """(CEL that this level holds only allowed keys, its path, the keys allowed), for every object
    level of `shape`, `expr` being the CEL of the value at `path` (within the `guards` comprehensions)."""
    if isinstance(shape, Items):
        var = f"x{depth}"
        yield from _levels(shape.item, var, f"{path}[]", depth + 1, (*guards, f"{expr}.all({var}, "))
        return
    if not isinstance(shape, Fields):
        return
    check = f"{expr}.all(k, k in {_cel_list(shape.keys)})"
    yield "".join(guards) + check + ")" * len(guards), path, ", ".join(shape.keys)
    for key, sub in shape.keys.items():
        if isinstance(sub, Fixed):
            inner = f"{expr}.{key}"
            cel = f"(!has({inner}) || {inner} == {json.dumps(sub.value)})"
            yield "".join(guards) + cel + ")" * len(guards), f"{path}.{key}", f"its default {json.dumps(sub.value)}"
            continue
        if isinstance(sub, Value):
            continue
        # Below this level only where the key is there: a guard of its own.
        inner = f"{expr}.{key}"
        for cel, sub_path, allowed in _levels(sub, inner, f"{path}.{key}", depth, ()):
            yield "".join(guards) + f"(!has({inner}) || {cel})" + ")" * len(guards), sub_path, allowed


def cel_validations(kind: str) -> list[tuple[str, str]]:
    """(CEL, message) per object level of `kind`'s spec: the level holds only the keys its shape allows."""
    out = [
        (
            f"object.all(k, k in {_cel_list(TOP_LEVEL)}) && has(object.spec)",
            f"a {kind} in a team namespace holds only {', '.join(TOP_LEVEL)}",
        )
    ]
    for cel, path, allowed in _levels(SPECS[kind], "object.spec", "spec", 0, ()):
        out.append((cel, f"{kind} {path} may hold only {allowed} (the fields the platform produces)"))
    return out
