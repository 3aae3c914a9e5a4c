"""The YAML text of `make print` and the golden files (manifests.yamltext.dump): PyYAML's dumper with
literal blocks and no aliases. What it writes loads back as the objects it was given, keeps strings a
YAML 1.1 loader would read as something else strings, and never writes an anchor or alias."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests.stack import stack_objects
from components.manifests.yamltext import dump
from components.settings.stackfile import load_stack

from .conftest import ROOT, STACK_FILES, TODAY


def check(docs: list[Any]) -> str:
    """dump() loads back as the objects, with no anchor or alias."""
    text = dump(docs)
    assert list(yaml.safe_load_all(text)) == docs, (docs, text)
    events = list(yaml.parse(text))
    assert not any(getattr(e, "anchor", None) for e in events), text
    assert not any(isinstance(e, yaml.AliasEvent) for e in events), text
    return text


def example_objects(path: Path) -> list[dict[str, Any]]:
    cfg = load_stack(path)
    registry = None if cfg.is_platform else list(load_stack(ROOT / "Pulumi.dev.yaml").approvals)
    return stack_objects(cfg, TODAY, registry).all()


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_example_stacks(path: Path) -> None:
    check(example_objects(path))


def test_the_c_dumper_is_used_where_the_wheel_has_it() -> None:
    from components.manifests import yamltext

    if hasattr(yaml, "CSafeDumper"):
        assert issubclass(yamltext._Dumper, yaml.CSafeDumper)


# --- strings a loader could read as something else, or that need quoting -------------------------
YAML11_SPECIAL = [
    *("true", "false", "True", "FALSE", "yes", "no", "Yes", "NO", "on", "off", "On", "OFF", "y", "n", "Y", "N"),
    *("null", "Null", "NULL", "~", ""),
    *("0", "443", "-1", "+1", "1_000", "0x1F", "0X1f", "0o17", "017", "0b101", "1:30", "190:20:30", "1e3"),
    *("1.5", "-1.5e+3", ".5", "1.", ".inf", "-.Inf", ".NaN", "1_000.5", "6.8523015e+5"),
    *("2024-01-01", "2001-12-14t21:59:43.10-05:00", "2002-12-14", "2001-12-14 21:59:43.10 -5"),
    *("=", "<<", "-", "?", ":", "---", "...", "--- a", "... a", "- a", "? a", ": a", "a:", "a: b", "a #b", "#a"),
    *("@a", "`a", "!a", "&a", "*a", "|a", ">a", "%a", "'a", '"a', "{a}", "[a]", "a,b", "a{b", "a]", "a#b", "a:b"),
]


@pytest.mark.parametrize("value", YAML11_SPECIAL)
def test_strings_yaml_would_resolve_otherwise_stay_strings(value: str) -> None:
    check([{"k": value, "l": [value], value or "empty": "v"}])


LITERALS = ["a\nb", "a\n", "a\n\nb\n", "a\n b"]


@pytest.mark.parametrize("value", LITERALS, ids=repr)
def test_multi_line_strings_are_literal_blocks(value: str) -> None:
    text = check([{"k": value}])
    assert text.startswith("k: |"), text


def test_shared_objects_are_written_out_in_each_place() -> None:
    """The builders share dicts (a ClusterPolicy's match and preconditions): Kubernetes tooling writes
    each place out in full, and so does dump(); PyYAML's default would write `&id001` and `*id001`."""
    match = {"any": [{"resources": {"kinds": ["ServiceEntry"]}}]}
    docs = [{"rules": [{"match": match}, {"match": match}]}, {"again": match, "list": [match["any"], match["any"]]}]
    text = check(docs)
    assert text.count("kinds:") == 5
    assert "&id001" in yaml.safe_dump_all(docs)  # the negative control: the default dumper aliases them


def test_long_lines_are_never_folded() -> None:
    value = " ".join(["word"] * 100)
    assert dump([{"k": value}]) == f"k: {value}\n"


# --- fuzz ---------------------------------------------------------------------------------------
PIECES = [
    *"abcXYZ0129 _-./:#'\"\\\n\t,[]{}&*!|>%@`?~=<+",
    *("\u00e9", "\u00a0", "\u2028", "\u2029", "\x85", "\ufeff", "\U0001f600", "\u4e2d", "\x00", "\x07", "\x7f", "\r"),
    *("  ", ": ", " #", "---", "...", "0x1F", "yes", "No", "null", "~", "1e3", "1.5", "2024-01-01", "12:30", "''"),
]
KEYS = ["name", "spec", "x-y.z/w", "security.corp/egress-approved", "a b", "on", "1", "'q'", '"d"', "k: v", "#k", "-"]


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.choice([0, 1, 1, 2, 3, 5, 8, 20])))


def _value(rng: random.Random, depth: int, made: list[Any]) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.55:
        kind = rng.random()
        if kind < 0.75:
            return _string(rng)
        if kind < 0.85:
            return rng.choice([None, True, False])
        return rng.randint(-(10**6), 10**6)
    if made and rng.random() < 0.1:
        return rng.choice(made)  # the same object again: written out, never aliased
    node: dict[str, Any] | list[Any]
    if roll < 0.8:
        node = {(rng.choice(KEYS) if rng.random() < 0.5 else _string(rng)): _value(rng, depth + 1, made) for _ in "ab"}
    else:
        node = [_value(rng, depth + 1, made) for _ in range(rng.choice([0, 1, 2, 3]))]
    made.append(node)
    return node


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_round_trip_without_aliases(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        made: list[Any] = []
        root = _value(rng, 0, made)
        check([root if isinstance(root, dict) else {"root": root}])


def test_empty_stream_and_empty_documents() -> None:
    assert dump([]) == ""
    check([{}, {"a": {}, "b": []}, {}])
