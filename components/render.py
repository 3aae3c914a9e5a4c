"""`python -m components.render Pulumi.<stack>.yaml`: every object the stack creates directly, as YAML.

Uses the same builders as the program. Helm charts' contents and the Gateway API bundle are not
expanded (they are upstream's); values only known at deploy time are shown as placeholders.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from . import authz, builders, config
from .config import ConfigError, StackConfig
from .rules import admission_cluster_policy

# Stands in for the Ollama container's address (TEST-NET-1, never routable).
OLLAMA_ADDRESS_PLACEHOLDER = "192.0.2.10"


def load_stack_file(path: Path) -> dict[str, Any]:
    """The `egress:*` values of a Pulumi.<stack>.yaml, keyed without the namespace."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    values = doc.get("config") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: 'config' must be a mapping")
    prefix = f"{config.CONFIG_NAMESPACE}:"
    return {k[len(prefix) :]: v for k, v in values.items() if isinstance(k, str) and k.startswith(prefix)}


def load_stack(path: Path) -> StackConfig:
    """A stack file's validated `egress:*` config."""
    return config.parse(load_stack_file(path))


def stack_objects(
    cfg: StackConfig, today: dt.date, registry: list[config.Approval] | None = None
) -> list[dict[str, Any]]:
    """What the stack creates directly. A team stack's registry comes from its platform stack."""
    objs: list[dict[str, Any]] = []
    overrides: dict[str, Sequence[Any]] = {}
    if cfg.platform is not None:
        objs += builders.gateway_objects()
        objs.append(authz.default_deny_configmap())
        objs.append(admission_cluster_policy())
        if cfg.platform.ollama.enabled:
            overrides[cfg.platform.ollama.destination] = [OLLAMA_ADDRESS_PLACEHOLDER]
        registry = list(cfg.approvals)
    if cfg.team is not None:
        objs += builders.team_objects(cfg.team, cfg.destinations, registry or [], today, overrides)
    return objs


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line strings (the authz policy files) as literal blocks, so they stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Literal blocks for multi-line strings; everything else as the safe dumper would.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(objs: Sequence[dict[str, Any]]) -> str:
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False)


def render(path: Path, today: dt.date | None = None, platform_file: Path | None = None) -> str:
    """YAML of the stack's objects; a team stack's approvals come from the platform's stack file."""
    cfg = load_stack(path)
    registry = None
    if platform_file is not None:
        registry = list(load_stack(platform_file).approvals)
    return dump(stack_objects(cfg, today or dt.date.today(), registry))


USAGE = "usage: python -m components.render Pulumi.<stack>.yaml [--approvals-from Pulumi.<platform>.yaml]"


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--approvals-from"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        platform_file = Path(argv[2]) if len(argv) == 3 else None
        sys.stdout.write(render(Path(argv[0]), platform_file=platform_file))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
