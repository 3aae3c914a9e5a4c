"""YAML text of objects: block style, keys in builder order, multi-line strings as literal blocks, lines
never folded, and no anchors or aliases (`&id001`): an object the builders share between two places is
written out in each, as Kubernetes tooling writes it. PyYAML's C dumper (libyaml) where the wheel has it.

`dump` writes the print and the golden files; `dump_one` the policy files the authz server loads (its
bytes are what the policies' digest is taken over, so its settings stay as they are).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

_BASE: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BASE):  # type: ignore[misc,valid-type]
    """Multi-line strings as literal blocks, so that policy files stay readable; never an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)

# Lines are never folded (PyYAML's default folds at 80 columns).
_UNFOLDED = 2**31 - 1


def dump(objs: Iterable[dict[str, Any]]) -> str:
    """A multi-document YAML stream, keys in builder order."""
    text: str = yaml.dump_all(list(objs), Dumper=_Dumper, sort_keys=False, width=_UNFOLDED)
    return text


def dump_one(obj: dict[str, Any]) -> str:
    """One document, lines never folded (policy files are read by machines first)."""
    text: str = yaml.dump(obj, Dumper=_BASE, sort_keys=False, width=4096)
    return text
