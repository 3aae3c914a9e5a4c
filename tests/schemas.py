"""Validation of rendered objects against the real upstream CRD schemas (test helper).

Unknown fields are errors here (the API server would silently prune them), and each
`x-kubernetes-validations` rule is evaluated with a real CEL engine (cel-python) where it can be:
rules on transitions (`oldSelf`) cannot apply to a create and are counted as skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celpy
import celpy.adapter
import jsonschema
import yaml

from components.settings.versions import crd_globs

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Which CRD files serve which API group: derived from the pins.
CRD_FILES = crd_globs()


@dataclass
class SchemaIndex:
    schemas: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (apiVersion, kind)
    _validators: dict[tuple[str, str], jsonschema.Draft7Validator] = field(default_factory=dict)

    def validator(self, key: tuple[str, str]) -> jsonschema.Draft7Validator:
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft7Validator(_strip_k8s_extensions(strict(self.schemas[key])))
        return self._validators[key]

    @classmethod
    def load(cls, crds_dir: Path) -> SchemaIndex:
        index = cls()
        for pattern in CRD_FILES.values():
            for path in sorted(crds_dir.glob(pattern)):
                for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    group = doc["spec"]["group"]
                    kind = doc["spec"]["names"]["kind"]
                    for v in doc["spec"]["versions"]:
                        index.schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
        return index

    def schema_for(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        return self.schemas.get((obj.get("apiVersion", ""), obj.get("kind", "")))


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy in which every object with declared properties rejects undeclared ones."""
    s = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for k, v in node.items():
                if k != "x-kubernetes-validations":
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    # Every object has these, whether or not its CRD spells them out (Istio's do not).
    for key, typ in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
        s.setdefault("properties", {}).setdefault(key, {"type": typ})
    walk(s)
    return s


def _strip_k8s_extensions(schema: Any) -> Any:
    # jsonschema ignores unknown keywords; int-or-string needs a type union to be checkable.
    if isinstance(schema, dict):
        out = {k: _strip_k8s_extensions(v) for k, v in schema.items()}
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [_strip_k8s_extensions(v) for v in schema]
    return schema


@dataclass
class CelReport:
    evaluated: int = 0
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _rules(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(path, rule, self) for every x-kubernetes-validations rule that applies to a present value."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value
    if isinstance(value, dict):
        for k, v in value.items():
            sub = (schema.get("properties") or {}).get(k)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                yield from _rules(sub, v, f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            yield from _rules(schema["items"], v, f"{path}[{i}]")


_ENV = celpy.Environment()


def check_cel(schema: dict[str, Any], obj: dict[str, Any], report: CelReport) -> None:
    for path, rule, value in _rules(schema, obj, obj.get("kind", "")):
        expr = rule["rule"]
        if "oldSelf" in expr:
            report.skipped.append(f"{path}: transition rule")
            continue
        try:
            program = _ENV.program(_ENV.compile(expr))
            result = program.evaluate({"self": celpy.adapter.json_to_cel(value)})
        except Exception as exc:  # noqa: BLE001 - a rule the engine cannot evaluate is reported, not hidden
            report.skipped.append(f"{path}: {type(exc).__name__}: {expr[:80]}")
            continue
        if isinstance(result, Exception):
            report.skipped.append(f"{path}: {result}: {expr[:80]}")
            continue
        report.evaluated += 1
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            report.failures.append(f"{path}: {rule.get('message', expr)}")


def validate(index: SchemaIndex, obj: dict[str, Any], report: CelReport) -> list[str]:
    """Schema errors of one object (empty when valid); CEL results go to `report`."""
    schema = index.schema_for(obj)
    if schema is None:
        return [f"no schema for {obj.get('apiVersion')}/{obj.get('kind')}"]
    checker = index.validator((obj["apiVersion"], obj["kind"]))
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in checker.iter_errors(obj)]
    check_cel(schema, obj, report)
    return errors
