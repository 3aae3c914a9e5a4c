"""Before `make up`: stop, with one line, if something the stack needs is missing (nothing is created).

Usage: python scripts/preflight.py STACK
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.settings import config
from components.settings.stackfile import load_stack


def _plugin_installed(name: str, version: str) -> bool:
    home = Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi"))
    return (home / "plugins" / f"resource-{name}-v{version}").is_dir()


def _pin(package: str) -> str:
    for line in (Path(__file__).resolve().parent.parent / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    return ""


def missing(stack: str) -> str | None:
    """What is missing for `pulumi up` of the stack, as one sentence; None when nothing is."""
    path = Path(f"Pulumi.{stack}.yaml")
    if not path.exists():
        return f"{path} does not exist: create it (see README, 'Stacks')"
    cfg = load_stack(path)
    if cfg.platform is None:
        return None
    needs_docker = cfg.platform.cluster.mode == "kind" or cfg.platform.ollama.enabled
    if needs_docker:
        if shutil.which("docker") is None:
            return "docker is not installed: the kind cluster and the Ollama container need Docker"
        if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
            return "the Docker engine is not reachable (`docker info` fails): start Docker"
    if cfg.platform.cluster.mode == "kind" and shutil.which("kind") is None:
        return "kind is not installed: install kind, or set egress:platform.cluster.mode: existing"
    plugins = [("command", _pin("pulumi-command"))]
    if cfg.platform.ollama.enabled:
        plugins.append(("docker", _pin("pulumi-docker")))
    for name, version in plugins:
        if not _plugin_installed(name, version):
            return (
                f"the Pulumi {name} plugin v{version} is not installed: "
                f"run `pulumi plugin install resource {name} v{version}` on a machine with internet"
            )
    return None


def main(argv: list[str]) -> int:
    try:
        problem = missing(argv[0] if argv else "dev")
    except config.ConfigError as exc:
        problem = str(exc)
    if problem:
        print(f"make up: stopped before creating anything: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
