"""`python -m components.usage --log FILE [--log FILE ...] STACKFILE...`: the egress gateway's usage report.

    kubectl logs deploy/egress-gateway -n egress-system | python -m components.usage --log - Pulumi.dev.yaml

STACKFILE: platform and/or team stack files; a team stack's platform stack file (`egress:platformStack`)
is read from the same directory. A missing file or an invalid stack file is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..settings.config import ConfigError
from . import Report, build_report, load_registry, to_csv, to_json, to_table

FORMATS: dict[str, Callable[[Report], str]] = {"table": to_table, "json": to_json, "csv": to_csv}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.usage", description="The egress gateway's usage, by team and destination."
    )
    parser.add_argument(
        "--log", action="append", required=True, metavar="FILE", help="the gateway's JSON access log; - for stdin"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")
    parser.add_argument("stacks", nargs="+", type=Path, metavar="STACKFILE", help="platform and/or team stack files")
    return parser


def _lines(sources: Sequence[str]) -> Iterator[str]:
    """The lines of every log in turn; bytes that are not UTF-8 are replaced, not fatal."""
    for source in sources:
        if source == "-":
            yield from io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        else:
            with open(source, encoding="utf-8", errors="replace") as log:
                yield from log


def _message(exc: ConfigError | OSError) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: cannot be read ({exc.strerror})"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        registry = load_registry(args.stacks)
        report = build_report(_lines(args.log), registry)
    except (ConfigError, OSError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    sys.stdout.write(FORMATS[args.format](report))
    if args.format != "table" and report.skipped:
        print(f"{report.skipped} lines skipped: not access-log entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
