"""The YAML emitter of `make print` and the golden files (manifests.yamltext.dump): what it writes
loads back as the objects it was given, and is what PyYAML writes (`yaml.dump_all`, literal blocks,
builder order), lines unfolded."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.manifests import yamltext
from components.manifests.stack import stack_objects
from components.manifests.yamltext import dump
from components.settings.stackfile import load_stack

from .conftest import ROOT, STACK_FILES, TODAY

HAS_LIBYAML = hasattr(yaml, "CSafeDumper")


def pyyaml(docs: list[Any]) -> str:
    """What the emitter stands in for: PyYAML with the literal-block representer, never folding."""
    text: str = yaml.dump_all(docs, Dumper=yamltext._Dumper, sort_keys=False, width=yamltext._UNFOLDED)
    return text


def emitted(docs: list[Any]) -> str:
    """The emitter's own text (dump() hands anything it does not write to PyYAML)."""
    return yamltext._Emitter().stream(docs)


def by_emitter(docs: list[Any]) -> bool:
    try:
        emitted(docs)
    except yamltext._UnsupportedError:
        return False
    return True


def check(docs: list[Any]) -> None:
    """dump() loads back as the objects, and is what PyYAML writes (lines unfolded)."""
    text = dump(docs)
    assert list(yaml.safe_load_all(text)) == docs, (docs, text)
    if HAS_LIBYAML:
        assert text == pyyaml(docs), docs


def example_objects(path: Path) -> list[dict[str, Any]]:
    cfg = load_stack(path)
    registry = None if cfg.is_platform else list(load_stack(ROOT / "Pulumi.dev.yaml").approvals)
    return stack_objects(cfg, TODAY, registry).all()


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_example_stacks(path: Path) -> None:
    objs = example_objects(path)
    assert by_emitter(objs)
    check(objs)


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
    docs = [{"k": value, "l": [value], value or "empty": "v"}]
    assert by_emitter(docs)
    check(docs)


LITERALS = ["a\nb", "a\n", " a\nb", "\na", "a\n b", "a\n\nb\n", "a \nb", "a\n \nb", "a\tb\nc", "\u00e9\nb", " \n\n"]
KEPT_BREAKS = ["a\n\n", "\n", "\n\n", "a\n\n\n"]  # "|+": left to PyYAML


@pytest.mark.parametrize("value", LITERALS + KEPT_BREAKS, ids=repr)
def test_multi_line_strings(value: str) -> None:
    """Literal blocks with the chomping indicator that keeps each string's final line breaks;
    double quotes where a literal block cannot hold the string (a space before a line break, a tab,
    non-ASCII)."""
    for docs in ([{"k": value}], [{"k": [value, {"n": value}]}, {"last": value}]):
        assert by_emitter(docs) == (value not in KEPT_BREAKS)
        check(docs)


def test_shared_objects_are_anchors_as_pyyaml_writes_them() -> None:
    match = {"any": [{"resources": {"kinds": ["ServiceEntry"]}}]}
    condition = {"key": "a", "operator": "NotEquals"}
    pre = {"all": [condition]}
    docs = [
        {"rules": [{"match": match, "pre": pre}, {"match": match, "pre": pre}, {"pre": {"all": [condition, {}]}}]},
        {"again": match, "list": [match["any"], match["any"]], "empty": [{}, {}]},
    ]
    text = emitted(docs)
    assert "&id001" in text and "*id001" in text
    check(docs)


# --- fuzz ---------------------------------------------------------------------------------------
PIECES = [
    *"abcXYZ0129 _-./:#'\"\\\n\t,[]{}&*!|>%@`?~=<+",
    *("\u00e9", "\u00a0", "\u2028", "\u2029", "\x85", "\ufeff", "\U0001f600", "\u4e2d", "\x00", "\x07", "\x7f", "\r"),
    *("  ", ": ", " #", "---", "...", "0x1F", "yes", "No", "null", "~", "1e3", "1.5", "2024-01-01", "12:30", "''"),
]
KEYS = ["name", "spec", "x-y.z/w", "security.corp/egress-approved", "a b", "on", "1", "'q'", '"d"', "k: v", "#k", "-"]
KEY_CHARS = "ab1 _-./:#'\"\\?,[]{}&*!|>%@`~=<+"  # keys are printable ASCII (others go to PyYAML)


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
        return rng.choice(made)  # the same object again: an alias
    node: dict[str, Any] | list[Any]
    if roll < 0.8:
        node = {}
        for _ in range(rng.choice([0, 1, 2, 4])):
            key = rng.choice(KEYS) if rng.random() < 0.5 else "".join(rng.sample(KEY_CHARS, rng.randint(1, 6)))
            node[key] = _value(rng, depth + 1, made)
    else:
        node = [_value(rng, depth + 1, made) for _ in range(rng.choice([0, 1, 2, 3]))]
    made.append(node)
    return node


def _streams(seed: int, count: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        made: list[Any] = []
        docs = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            root = _value(rng, 0, made)
            docs.append(root if isinstance(root, dict) else {"root": root})
        out.append(docs)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_round_trip_and_pyyaml(seed: int) -> None:
    streams = _streams(seed, 500)
    for docs in streams:
        check(docs)
    assert sum(by_emitter(docs) for docs in streams) > 0.8 * len(streams)  # the fuzz reaches the emitter


@pytest.mark.parametrize("value", [_string(random.Random(i)) for i in range(200)] + PIECES, ids=repr)
def test_fuzz_strings_as_values_and_keys(value: str) -> None:
    check([{"v": value, "l": [value, [value]], "m": {"n": value}}])
    check([{value: 1}])


def test_what_the_emitter_does_not_write_goes_to_pyyaml() -> None:
    cases: list[list[Any]] = [[{"f": 1.5}], [{1: "a"}], [{"k" * 200: "a"}], [{"a\nb": 1}], [["not a mapping"]]]
    for docs in cases:
        assert not by_emitter(docs)
        check(docs)


def test_empty_stream_and_empty_documents() -> None:
    assert dump([]) == pyyaml([]) == ""
    check([{}, {"a": {}, "b": []}, {}])
