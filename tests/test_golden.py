"""Rendered objects of the example stacks against golden files reviewed by hand.

To update after an intended change: `python -m tests.test_golden` rewrites them; review the diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from components.manifests.stack import stack_objects
from components.manifests.yamltext import dump
from components.settings.stackfile import load_stack

from .conftest import ROOT, STACK_FILES, TODAY

GOLDEN = ROOT / "tests" / "golden"


def rendered(path: Path) -> str:
    cfg = load_stack(path)
    # Team stacks take the approval registry from the platform stack.
    registry = list(load_stack(ROOT / "Pulumi.dev.yaml").approvals)
    return dump(stack_objects(cfg, TODAY, None if cfg.is_platform else registry).all())


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_render_matches_golden(path: Path) -> None:
    golden = GOLDEN / f"{path.stem.removeprefix('Pulumi.')}.yaml"
    assert rendered(path) == golden.read_text(), f"{golden.name} differs; see this module's docstring"


if __name__ == "__main__":
    for p in STACK_FILES:
        (GOLDEN / f"{p.stem.removeprefix('Pulumi.')}.yaml").write_text(rendered(p))
    sys.exit(0)
