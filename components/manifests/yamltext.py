"""YAML text of objects: libyaml's emitter where available, multi-line strings as literal blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

_BASE: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BASE):  # type: ignore[misc,valid-type]
    """Multi-line strings (the authz policy files) as literal blocks, so they stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(objs: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream, keys in builder order."""
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False)


def dump_one(obj: dict[str, Any]) -> str:
    """One document, lines never folded (policy files are read by machines first)."""
    text: str = yaml.dump(obj, Dumper=_BASE, sort_keys=False, width=4096)
    return text
