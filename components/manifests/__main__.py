"""`python -m components.manifests Pulumi.<stack>.yaml` (`make print`): the stack's objects as YAML.

From the stack files alone: no engine, no state, no cluster. A team stack's approval marks come
from its platform's stack file (`egress:platformStack` names it), exactly as `pulumi up` would set
them from the platform's registry. Values known only at deploy time are shown as placeholders.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from ..settings.config import ConfigError
from ..settings.stackfile import load_stack, platform_stack_file
from .stack import stack_objects
from .yamltext import dump

USAGE = "usage: python -m components.manifests Pulumi.<stack>.yaml [--approvals-from Pulumi.<platform>.yaml]"


def render(path: Path, today: dt.date | None = None, platform_file: Path | None = None) -> str:
    cfg = load_stack(path)
    registry = None
    if cfg.platform is None:
        platform_file = platform_file or platform_stack_file(cfg, path.resolve().parent)
        registry = load_stack(platform_file).approvals_in_force
    return dump(stack_objects(cfg, today or dt.date.today(), registry).all())


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--approvals-from"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        sys.stdout.write(render(Path(argv[0]), platform_file=Path(argv[2]) if len(argv) == 3 else None))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
