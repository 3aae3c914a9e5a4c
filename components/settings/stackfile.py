"""Stack files: read a `Pulumi.<stack>.yaml` and validate its `egress:*` config (no Pulumi import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import config
from .config import ConfigError, StackConfig

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_stack_file(path: Path) -> dict[str, Any]:
    """The `egress:*` values of a Pulumi.<stack>.yaml, keyed without the namespace."""
    try:
        doc = yaml.load(path.read_text(), Loader=_LOADER) or {}
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
    """A stack file's validated `egress:*` config (credentials stay ciphertext)."""
    raw = load_stack_file(path)
    config.check_credentials_secret(raw, is_secret=False)
    return config.parse(raw)


def platform_stack_file(cfg: StackConfig, project_dir: Path) -> Path:
    """The platform stack file a team stack reads (`organization/egress/dev` -> Pulumi.dev.yaml)."""
    assert cfg.platform_stack is not None
    return project_dir / f"Pulumi.{cfg.platform_stack.rsplit('/', 1)[-1]}.yaml"
