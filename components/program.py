"""The Pulumi program: read and validate the stack's `egress:*` config, then build its role."""

from __future__ import annotations

import datetime as dt
import gc
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


# The SDK keeps several Outputs, futures and tasks alive per resource until the program ends, so
# with the interpreter's default thresholds (a collection every 700 allocations) the cyclic
# collector rescans them thousands of times: a third of the program's time at 1000 destinations
# (measured in benchmarks/bench_program.py). A larger first generation keeps the same memory
# ceiling (the objects live to the end anyway) and collects as often as it finds anything.
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def main() -> None:
    tune_gc()
    try:
        raw = read_config()
        config.check_credentials_secret(raw, pulumi.runtime.is_config_secret(f"{config.CONFIG_NAMESPACE}:credentials"))
        cfg = config.parse(raw)
        (platform_stack.build if cfg.is_platform else team_stack.build)(cfg, dt.date.today())
    except ConfigError as exc:
        # One line, no traceback; raised before any resource is registered.
        raise pulumi.RunError(str(exc)) from None
