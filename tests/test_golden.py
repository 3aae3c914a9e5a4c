"""Rendered objects of the example stacks against golden files reviewed by hand.

To update after an intended change: `python -m tests.test_golden` rewrites them; review the diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from components.manifests.stack import REGISTRY_DEPENDENT_KINDS, stack_objects
from components.manifests.yamltext import dump
from components.settings.stackfile import load_stack, platform_stack_file

from .conftest import ROOT, STACK_FILES, TODAY

GOLDEN = ROOT / "tests" / "golden"


def rendered(path: Path) -> str:
    cfg = load_stack(path)
    # Team stacks take the approval registry from their platform stack (what covers its environment).
    if cfg.is_platform:
        return dump(stack_objects(cfg, TODAY).all())
    registry = load_stack(platform_stack_file(cfg, ROOT)).approvals_in_force
    return dump(stack_objects(cfg, TODAY, registry).all())


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_the_registry_changes_only_the_metadata_of_registry_dependent_kinds(path: Path) -> None:
    """What lets a team stack lay its resources out before the platform's registry arrives."""
    cfg = load_stack(path)
    registry = [] if cfg.is_platform else load_stack(platform_stack_file(cfg, ROOT)).approvals_in_force
    without = stack_objects(cfg, TODAY, []).all() if not cfg.is_platform else stack_objects(cfg, TODAY).all()
    with_registry = stack_objects(cfg, TODAY, registry).all()
    assert [(o["kind"], o["metadata"]["name"]) for o in without] == [
        (o["kind"], o["metadata"]["name"]) for o in with_registry
    ]
    for a, b in zip(without, with_registry, strict=True):
        if a["kind"] in REGISTRY_DEPENDENT_KINDS:
            assert {k: v for k, v in a.items() if k != "metadata"} == {k: v for k, v in b.items() if k != "metadata"}
        else:
            assert a == b
    if not cfg.is_platform:  # the examples' destinations are approved: the marks do differ
        assert any(a != b for a, b in zip(without, with_registry, strict=True))


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_render_matches_golden(path: Path) -> None:
    golden = GOLDEN / f"{path.stem.removeprefix('Pulumi.')}.yaml"
    assert rendered(path) == golden.read_text(), f"{golden.name} differs; see this module's docstring"


if __name__ == "__main__":
    for p in STACK_FILES:
        (GOLDEN / f"{p.stem.removeprefix('Pulumi.')}.yaml").write_text(rendered(p))
    sys.exit(0)
