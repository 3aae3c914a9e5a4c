"""The Pulumi program: read and validate the stack's `egress:*` config, then build its role."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pulumi

from .platform import stack as platform_stack
from .settings import config
from .settings.config import ConfigError
from .team import stack as team_stack


def read_config() -> dict[str, Any]:
    """Every `egress:*` value of the stack, keyed without the namespace (objects decoded)."""
    prefix = f"{config.CONFIG_NAMESPACE}:"
    out: dict[str, Any] = {}
    # The python language plugin passes config in the environment; the in-process server sets it.
    values = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    for key, value in values.items():
        if not key.startswith(prefix):
            continue
        try:
            out[key[len(prefix) :]] = json.loads(value)
        except json.JSONDecodeError:
            out[key[len(prefix) :]] = value
    return out


def main() -> None:
    try:
        cfg = config.parse(read_config())
        (platform_stack.build if cfg.is_platform else team_stack.build)(cfg, dt.date.today())
    except ConfigError as exc:
        # One line, no traceback; raised before any resource is registered.
        raise pulumi.RunError(str(exc)) from None
