"""The platform program's stack outputs under mocks (team stacks and the engine fixture rely on them)."""

from __future__ import annotations

import pulumi

from components.platform import stack as platform
from components.settings.stackfile import load_stack

from . import mockgraph
from .conftest import ROOT, TODAY


def platform_export_names() -> set[str]:
    """Names the platform program exports (read from its source of truth: platform.build)."""
    exported: dict[str, object] = {}
    original = pulumi.export
    pulumi.export = lambda name, value: exported.__setitem__(name, value)
    try:
        mockgraph.install(mockgraph.Graph())
        platform.build(load_stack(ROOT / "Pulumi.dev.yaml"), TODAY)
    finally:
        pulumi.export = original
    return set(exported)


def test_platform_exports_what_a_person_and_team_stacks_use() -> None:
    assert platform_export_names() == {
        "teams",
        "environment",
        "gatewayAddress",
        "authzAddress",
        "approvals",
        "tryCommands",
        "ollamaAddress",
    }
