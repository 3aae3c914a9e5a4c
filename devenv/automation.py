"""A throwaway Pulumi stack on a local backend, its program run in-process (the Automation API's inline
programs): the real Pulumi CLI and engine (PULUMI_BIN) and the pinned provider plugins (PULUMI_HOME)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from pulumi import automation as auto

PASSPHRASE = "throwaway-stack-only"  # such a stack holds no secrets


class AutomationError(RuntimeError):
    """The Pulumi CLI is missing or a command failed."""


def throwaway_stack(
    workdir: Path, program: Callable[[], None], env: Mapping[str, str] | None = None, *, project: str = "egress-devenv"
) -> auto.Stack:
    """A new stack `local` of `project` in `workdir` (its state there too), running `program`."""
    pulumi_bin = os.environ.get("PULUMI_BIN", "")
    if not pulumi_bin or not os.access(pulumi_bin, os.X_OK):
        raise AutomationError("PULUMI_BIN is not set to the Pulumi CLI; run through `make test`")
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    cli = workdir / "cli" / "bin"  # the layout the Automation API looks for: <root>/bin/pulumi
    cli.mkdir(parents=True, exist_ok=True)
    if not (cli / "pulumi").exists():
        (cli / "pulumi").symlink_to(pulumi_bin)
    env_vars = {
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        **(env or {}),
    }
    return auto.create_stack(
        "local",
        project_name=project,
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(workdir), env_vars=env_vars, pulumi_command=auto.PulumiCommand(str(cli.parent))
        ),
    )


def errors_of(err: auto.errors.CommandError) -> str:
    """The distinct `error:` lines of a failed command (its whole output where there are none)."""
    lines = [line.strip() for line in str(err).splitlines() if "error:" in line]
    return "; ".join(dict.fromkeys(lines[:4])) or str(err)
