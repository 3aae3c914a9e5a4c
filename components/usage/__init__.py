"""The egress gateway's usage report: its JSON access log, attributed to teams and destinations.

Pure Python (no Pulumi). Who called comes from the listener the request arrived on (the access log's
`listener_port`: each team has its own, and ztunnel lets only the team's namespace connect to it) and
the platform's team registry (port -> team), never from anything the caller sent; which destination
comes from the host the request named and that team's own destinations. A line that is not an
access-log entry (Envoy's own log lines, say) is counted as skipped.

Every request falls in exactly one category, checked in this order:

- allowed: forwarded to the upstream, i.e. at least one upstream attempt, or a response that came
  from the upstream (`response_code_details` is `via_upstream`). Its status is counted by class
  (2xx..5xx), whoever finally wrote it: a 503 after failed retries is an allowed request's 5xx.
- denied: answered by the ext_authz filter (`response_code_details` starting with `ext_authz`:
  `ext_authz_denied`, or `ext_authz_error` when the authorization server failed, fail closed),
  whatever status the policy chose (403 by default).
- rate limited: any other reply of the gateway's own with status 429 or the `RL` response flag.
- other local: every other reply of the gateway's own (404 `route_not_found`, 503 with no upstream
  attempt, no response at all...).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..settings.config import StackConfig
from ..settings.stackfile import load_stack, platform_stack_file

UNKNOWN_TEAM = "(unknown)"
NO_HOST = "(none)"
TOTAL = "(total)"

# Envoy's %RESPONSE_CODE_DETAILS% for a response the upstream wrote; anything else the gateway wrote itself.
VIA_UPSTREAM = "via_upstream"


class Outcome(StrEnum):
    """What the gateway did with one request (the categories of the module docstring)."""

    ALLOWED = "allowed"
    DENIED = "denied"
    RATE_LIMITED = "rate_limited"
    OTHER_LOCAL = "other_local"


@dataclass(frozen=True, slots=True)
class Entry:
    """The fields of one access-log entry the report reads; where Envoy had none, "" or None."""

    port: int | None  # the listener's port: whose listener the request arrived on
    host: str
    code: int | None
    details: str
    flags: frozenset[str]
    attempts: int
    duration_ms: int | None

    @property
    def outcome(self) -> Outcome:
        if self.attempts >= 1 or self.details == VIA_UPSTREAM:
            return Outcome.ALLOWED
        if self.details.startswith("ext_authz"):
            return Outcome.DENIED
        if self.code == 429 or "RL" in self.flags:
            return Outcome.RATE_LIMITED
        return Outcome.OTHER_LOCAL


def _text(value: Any) -> str:
    """A string field; "" for Envoy's "-" and for null."""
    return "" if value is None or value == "-" else str(value)


def _number(value: Any) -> int | None:
    """A numeric field, written as a number or as a string; None for "-", null or anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def host_of(authority: str) -> str:
    """The host an :authority names, without its port ("api.openai.com:443" -> "api.openai.com")."""
    host, colon, port = authority.rpartition(":")
    name = host if colon and port.isdigit() else authority
    return name.lower() or NO_HOST


def parse_line(line: str) -> Entry | None:
    """One access-log entry, or None for a line that is not a JSON object with a `response_code`."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or "response_code" not in raw:
        return None
    return Entry(
        port=_number(raw.get("listener_port")),
        host=host_of(_text(raw.get("authority"))),
        code=_number(raw.get("response_code")),
        details=_text(raw.get("response_code_details")),
        flags=frozenset(_text(raw.get("response_flags")).split(",")) - {""},
        # No upstream tried: Envoy writes 0 or "-".
        attempts=_number(raw.get("upstream_request_attempt_count")) or 0,
        duration_ms=_number(raw.get("duration_ms")),
    )


@dataclass(frozen=True)
class Registry:
    """Who is who: the platform's registry (listener port -> team) and each team's destinations (host -> name)."""

    teams: Mapping[int, str]
    destinations: Mapping[str, Mapping[str, str]]

    def team_of(self, port: int | None) -> str:
        """The team whose listener the port is; UNKNOWN_TEAM for a port no team owns (or none logged)."""
        return self.teams.get(port, UNKNOWN_TEAM) if port is not None else UNKNOWN_TEAM

    def destination_of(self, team: str, host: str) -> str:
        """The team's destination for the host; the host itself where the team has none."""
        return self.destinations.get(team, {}).get(host, host)


def registry(configs: Iterable[StackConfig]) -> Registry:
    """The registry from platform stacks (`egress:teams`) and every stack's own team and destinations."""
    teams: dict[int, str] = {}
    destinations: dict[str, dict[str, str]] = {}
    for cfg in configs:
        teams.update((t.port, t.name) for t in cfg.teams)
        if cfg.team is not None:
            destinations.setdefault(cfg.team.name, {}).update((d.host, d.name) for d in cfg.destinations)
    return Registry(teams, destinations)


def load_registry(paths: Sequence[Path]) -> Registry:
    """The registry from stack files, plus the platform stack file each team stack names
    (`egress:platformStack`, in the same directory) where it was not given. Raises ConfigError."""
    configs = {path.resolve(): load_stack(path) for path in paths}
    for path, cfg in list(configs.items()):
        if not cfg.is_platform:
            platform = platform_stack_file(cfg, path.parent)
            if platform not in configs:
                configs[platform] = load_stack(platform)
    return registry(configs.values())


def percentile(ordered: Sequence[int], p: int) -> int | None:
    """Nearest-rank percentile: the smallest of the ascending values such that at least p% of them are
    less than or equal to it, i.e. the value of rank ceil(p/100 * n) (1-based); None for no values."""
    if not ordered:
        return None
    rank = max(math.ceil(p * len(ordered) / 100), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Row:
    """What one team sent to one destination (or, in the totals, everything). Durations in ms."""

    team: str
    destination: str
    requests: int
    allowed: int
    denied: int
    rate_limited: int
    other_local: int
    upstream_2xx: int
    upstream_3xx: int
    upstream_4xx: int
    upstream_5xx: int
    # Upstream attempts beyond the first, and the requests that made any.
    retries: int
    retried_requests: int
    p50_ms: int | None
    p99_ms: int | None


COLUMNS = tuple(f.name for f in fields(Row))


def summarize(team: str, destination: str, entries: Sequence[Entry]) -> Row:
    outcomes = Counter(e.outcome for e in entries)
    classes = Counter(e.code // 100 for e in entries if e.outcome is Outcome.ALLOWED and e.code is not None)
    durations = sorted(e.duration_ms for e in entries if e.duration_ms is not None)
    return Row(
        team=team,
        destination=destination,
        requests=len(entries),
        allowed=outcomes[Outcome.ALLOWED],
        denied=outcomes[Outcome.DENIED],
        rate_limited=outcomes[Outcome.RATE_LIMITED],
        other_local=outcomes[Outcome.OTHER_LOCAL],
        upstream_2xx=classes[2],
        upstream_3xx=classes[3],
        upstream_4xx=classes[4],
        upstream_5xx=classes[5],
        retries=sum(max(e.attempts - 1, 0) for e in entries),
        retried_requests=sum(1 for e in entries if e.attempts > 1),
        p50_ms=percentile(durations, 50),
        p99_ms=percentile(durations, 99),
    )


@dataclass(frozen=True)
class Report:
    rows: list[Row]  # by team (unknown last), then destination
    total: Row
    skipped: int  # non-blank lines that are not access-log entries

    @property
    def all_rows(self) -> list[Row]:
        return [*self.rows, self.total]


def build_report(lines: Iterable[str], registry: Registry) -> Report:
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        entry = parse_line(line)
        if entry is None:
            skipped += 1
            continue
        team = registry.team_of(entry.port)
        groups[team, registry.destination_of(team, entry.host)].append(entry)
    order = sorted(groups, key=lambda key: (key[0] == UNKNOWN_TEAM, key))
    rows = [summarize(team, destination, groups[team, destination]) for team, destination in order]
    everything = [e for entries in groups.values() for e in entries]
    return Report(rows, summarize(TOTAL, TOTAL, everything), skipped)


def to_records(report: Report) -> list[dict[str, Any]]:
    """One object per row, totals last, keyed by COLUMNS; a percentile of no durations is None."""
    return [asdict(row) for row in report.all_rows]


def to_json(report: Report) -> str:
    return json.dumps(to_records(report), indent=2) + "\n"


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(to_records(report))
    return out.getvalue()


# The table's headings, one per column of Row.
_HEADINGS = (
    *("TEAM", "DESTINATION", "REQUESTS", "ALLOWED", "DENIED", "LIMITED", "LOCAL"),
    *("2XX", "3XX", "4XX", "5XX", "RETRIES", "RETRIED", "P50 MS", "P99 MS"),
)
_LEGEND = (
    "DENIED: by authorization; LIMITED: rate limited; LOCAL: other replies of the gateway's own;\n"
    "2XX..5XX: upstream status of allowed requests; RETRIES: attempts beyond the first, RETRIED: requests\n"
    "that retried; P50/P99 MS: nearest-rank percentiles of the duration, in milliseconds."
)


def _cells(row: Row) -> list[str]:
    return ["-" if value is None else str(value) for value in asdict(row).values()]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Names left-aligned, numbers right-aligned."""
    names = [c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True)]
    numbers = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
    return "  ".join(names + numbers).rstrip()


def to_table(report: Report) -> str:
    table = [list(_HEADINGS), *(_cells(row) for row in report.all_rows)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(_HEADINGS))]
    lines = [_line(cells, widths) for cells in table]
    lines.insert(-1, "-" * len(lines[0]))
    read = f"{report.total.requests} access-log entries read; {report.skipped} lines skipped (not access-log entries)."
    return "\n".join([*lines, "", read, _LEGEND]) + "\n"
