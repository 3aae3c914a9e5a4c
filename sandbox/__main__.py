"""`python -m sandbox Pulumi.<stack>.yaml [--access-log FILE]`: run the stack's egress path offline and
check it (sandbox/harness.py starts the path, sandbox/scenarios.py runs and judges the scenarios).

Prints one line per scenario (expected and observed) and exits non-zero if any scenario differs or
could not run although it should have. Every process is stopped at the end: on success, failure,
Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .scenarios import interrupt, run


def main(argv: list[str]) -> int:
    keep = None
    if len(argv) == 3 and argv[1] == "--access-log":
        keep, argv = Path(argv[2]), argv[:1]
    if len(argv) != 1:
        print("usage: python -m sandbox Pulumi.<stack>.yaml [--access-log FILE]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupt)
    return run(Path(argv[0]), os.environ.get("KYVERNO_AUTHZ_BIN") or None, keep)[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
