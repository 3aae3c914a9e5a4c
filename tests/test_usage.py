"""The usage report from synthetic access-log lines and the repository's stack files: every category
counted exactly, the percentiles, the JSON and CSV forms, and `python -m components.usage` itself."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path

import pytest

from components.manifests.gateway import ACCESS_LOG_FORMAT
from components.usage import (
    COLUMNS,
    TOTAL,
    UNKNOWN_TEAM,
    Outcome,
    Report,
    Row,
    build_report,
    host_of,
    load_registry,
    parse_line,
    percentile,
    to_csv,
    to_json,
    to_table,
)

from .conftest import ROOT

STACKS = ["Pulumi.dev.yaml", "Pulumi.team-research.yaml", "Pulumi.team-payments.yaml"]
# Who called is the listener the request arrived on (Pulumi.dev.yaml's egress:teams).
RESEARCH = "10002"
PAYMENTS = 10003  # Envoy writes the port as a number or a string
ML = "10001"
ROGUE = "80"  # the Gateway's own listener: no team's
OPENAI = "api.openai.com:443"
MODELS = "models.partner.example:8080"
LEDGER = "ledger.partner.example:8080"
OLLAMA = "ollama.external:11434"
# A field as Envoy writes it: a number, a string (numbers too, or "-"), or null.
Value = int | str | None
RESET = "upstream_reset_before_response_started{remote_connection_failure}"


def entry(port: Value, authority: str, code: Value, details: str, attempts: Value, ms: Value, flags: str = "-") -> str:
    """An access-log line as the gateway writes it: every field of its format, "-" where not given."""
    fields = {
        "listener_port": port,
        "authority": authority,
        "response_code": code,
        "response_code_details": details,
        "upstream_request_attempt_count": attempts,
        "duration_ms": ms,
        "response_flags": flags,
    }
    assert set(fields) <= set(ACCESS_LOG_FORMAT)
    return json.dumps({**dict.fromkeys(ACCESS_LOG_FORMAT, "-"), **fields})


LOG = [
    # research -> openai: two 200s (one with numbers as strings), retries ending in 503, an upstream 404, a denial.
    entry(RESEARCH, OPENAI, 200, "via_upstream", 1, 120),
    entry(RESEARCH, OPENAI, "200", "via_upstream", "1", "80"),
    entry(RESEARCH, OPENAI, 503, RESET, 3, 2100, "URX,UF"),
    entry(RESEARCH, OPENAI, 404, "via_upstream", 1, 45),
    entry(RESEARCH, OPENAI, 403, "ext_authz_denied", "-", 3, "UAEX"),
    # research -> ml's host: not one of research's destinations, so reported under the host.
    entry(RESEARCH, OLLAMA, 403, "ext_authz_denied", None, 2, "UAEX"),
    # payments: rate limited, a retry ending in 200, a redirect, no upstream, no route.
    entry(PAYMENTS, MODELS, 429, "local_rate_limited", "-", 0, "RL"),
    entry(PAYMENTS, MODELS, 200, "via_upstream", 2, 300),
    entry(PAYMENTS, LEDGER, 302, "via_upstream", 1, 12),
    entry(PAYMENTS, LEDGER, 503, "no_healthy_upstream", 0, 1, "UH"),
    entry(PAYMENTS, "nowhere.partner.example", 404, "route_not_found", 0, 0, "NR"),
    # the platform's demo team.
    entry(ML, OLLAMA, 200, "via_upstream", 1, 40),
    # no identity, and a namespace no team owns; the authz server failed (fail closed).
    entry("-", OLLAMA, 403, "ext_authz_denied", "-", 2, "UAEX"),
    entry(ROGUE, OLLAMA, 403, "ext_authz_error", 0, 5, "UAEX"),
    # not access-log entries: Envoy's own log line and a JSON line without a response code; a blank line.
    "[2026-11-26 10:00:00.000][1][info][main] starting main dispatch loop",
    '{"level": "info", "msg": "xds connected"}',
    "",
]


def row(team: str, destination: str, *counts: int) -> Row:
    return Row(team, destination, *counts)


#                  requests allowed denied limited local 2xx 3xx 4xx 5xx retries retried p50 p99
EXPECTED_ROWS = [
    row("ml", "ollama", 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 40, 40),
    row("payments", "ledger", 2, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 12),
    row("payments", "nowhere.partner.example", 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    row("payments", "partner-models", 2, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 300),
    row("research", "ollama.external", 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2),
    # durations 3 45 80 120 2100: p50 is rank ceil(2.5) = 3, p99 rank ceil(4.95) = 5.
    row("research", "openai", 5, 4, 1, 0, 0, 2, 0, 1, 1, 2, 1, 80, 2100),
    row(UNKNOWN_TEAM, "ollama.external", 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 5),
]
# Durations, ascending: 0 0 1 2 2 3 5 12 40 45 80 120 300 2100 -> rank 7 (p50) and 14 (p99).
EXPECTED_TOTAL = row(TOTAL, TOTAL, 14, 7, 4, 1, 2, 4, 1, 1, 1, 3, 2, 5, 2100)


@pytest.fixture(scope="module")
def report() -> Report:
    # Team stacks only: their platform stack file (the registry and the demo team) is found beside them.
    return build_report(LOG, load_registry([ROOT / "Pulumi.team-research.yaml", ROOT / "Pulumi.team-payments.yaml"]))


def test_every_category_is_counted_exactly(report: Report) -> None:
    assert report.rows == EXPECTED_ROWS
    assert report.total == EXPECTED_TOTAL
    assert report.skipped == 2


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        (entry(RESEARCH, OPENAI, 200, "via_upstream", 1, 1), Outcome.ALLOWED),
        (entry(RESEARCH, OPENAI, 503, "upstream_per_try_timeout", 3, 1, "UT,URX"), Outcome.ALLOWED),
        (entry(RESEARCH, OPENAI, 403, "ext_authz_denied", "-", 1, "UAEX"), Outcome.DENIED),
        (entry(RESEARCH, OPENAI, 403, "ext_authz_error", 0, 1, "UAEX"), Outcome.DENIED),
        (entry(RESEARCH, OPENAI, 429, "local_rate_limited", "-", 1, "RL"), Outcome.RATE_LIMITED),
        (entry(RESEARCH, OPENAI, 429, "local_rate_limited", "-", 1), Outcome.RATE_LIMITED),
        (entry(RESEARCH, OPENAI, 404, "route_not_found", 0, 1, "NR"), Outcome.OTHER_LOCAL),
        (entry(RESEARCH, OPENAI, 503, "no_healthy_upstream", "-", 1, "UH"), Outcome.OTHER_LOCAL),
    ],
)
def test_outcome_of_one_entry(line: str, outcome: Outcome) -> None:
    parsed = parse_line(line)
    assert parsed is not None
    assert parsed.outcome is outcome


def test_an_upstream_429_is_an_allowed_4xx_not_a_rate_limit() -> None:
    parsed = parse_line(entry(RESEARCH, OPENAI, 429, "via_upstream", 1, 1))
    assert parsed is not None and parsed.outcome is Outcome.ALLOWED


def test_absent_values_and_numbers_as_strings() -> None:
    parsed = parse_line(
        json.dumps({"response_code": "0", "listener_port": None, "response_flags": None, "duration_ms": "-"})
    )
    assert parsed is not None
    assert (parsed.code, parsed.port, parsed.flags, parsed.attempts, parsed.duration_ms) == (
        0,
        None,
        frozenset(),
        0,
        None,
    )
    assert parsed.outcome is Outcome.OTHER_LOCAL


@pytest.mark.parametrize("line", ["not json", "[1, 2]", '"text"', "{}", '{"listener_port": 10001}'])
def test_a_line_that_is_not_an_entry_is_none(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("api.openai.com:443", "api.openai.com"),
        ("API.OpenAI.com", "api.openai.com"),
        ("[::1]:80", "[::1]"),
        ("", "(none)"),
    ],
)
def test_host_of_authority(authority: str, host: str) -> None:
    assert host_of(authority) == host


def test_nearest_rank_percentiles() -> None:
    hundred = list(range(1, 101))
    assert (percentile(hundred, 50), percentile(hundred, 99)) == (50, 99)
    assert (percentile([7], 50), percentile([7], 99)) == (7, 7)
    assert (percentile([1, 2], 50), percentile([1, 2], 99)) == (1, 2)
    assert percentile(list(range(1, 201)), 99) == 198
    assert percentile([], 50) is None


def test_a_group_without_durations_has_no_percentiles() -> None:
    report = build_report([entry(ML, OLLAMA, 200, "via_upstream", 1, "-")], load_registry([ROOT / "Pulumi.dev.yaml"]))
    assert (report.total.p50_ms, report.total.p99_ms) == (None, None)
    assert json.loads(to_json(report))[-1]["p50_ms"] is None
    assert list(csv.DictReader(io.StringIO(to_csv(report))))[-1]["p50_ms"] == ""
    total = next(line for line in to_table(report).splitlines() if line.startswith(TOTAL))
    assert total.split()[-2:] == ["-", "-"]


def test_json_is_a_list_of_rows_with_stable_keys_totals_last(report: Report) -> None:
    records = json.loads(to_json(report))
    assert all(tuple(r) == COLUMNS for r in records)
    assert [Row(**r) for r in records] == [*EXPECTED_ROWS, EXPECTED_TOTAL]
    assert records[-1]["team"] == records[-1]["destination"] == TOTAL


def test_csv_has_a_header_and_one_line_per_row(report: Report) -> None:
    lines = to_csv(report).splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[-1] == "(total),(total),14,7,4,1,2,4,1,1,1,3,2,5,2100"
    assert lines[1:-1] == [",".join(str(v) for v in astuple(r)) for r in EXPECTED_ROWS]


def test_table_lines_up_and_says_what_was_skipped(report: Report) -> None:
    lines = to_table(report).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        *("TEAM", "DESTINATION", "REQUESTS", "ALLOWED", "DENIED", "LIMITED", "LOCAL"),
        *("2XX", "3XX", "4XX", "5XX", "RETRIES", "RETRIED", "P50 MS", "P99 MS"),
    ]
    assert lines[6].split() == [
        "research",
        "openai",
        "5",
        "4",
        "1",
        "0",
        "0",
        "2",
        "0",
        "1",
        "1",
        "2",
        "1",
        "80",
        "2100",
    ]
    assert lines[9].split()[:3] == [TOTAL, TOTAL, "14"]
    assert len({len(line) for line in lines[:10]}) == 1  # header, 7 rows, rule, totals: aligned
    assert "14 access-log entries read; 2 lines skipped (not access-log entries)." in lines


def test_only_the_platform_registry_says_whose_namespace_it_is() -> None:
    registry = load_registry([ROOT / "Pulumi.team-payments.yaml"])
    assert registry.team_of(10002) == "research"
    assert registry.team_of(10009) == UNKNOWN_TEAM and registry.team_of(None) == UNKNOWN_TEAM
    assert registry.destination_of("payments", "ledger.partner.example") == "ledger"
    assert registry.destination_of("research", "ledger.partner.example") == "ledger.partner.example"


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "components.usage", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_cli_reads_stdin_with_the_example_stack_files() -> None:
    out = run_cli("--log", "-", "--format", "json", *STACKS, stdin="\n".join(LOG) + "\n")
    assert out.returncode == 0, out.stderr
    assert [Row(**r) for r in json.loads(out.stdout)] == [*EXPECTED_ROWS, EXPECTED_TOTAL]
    assert out.stderr == "2 lines skipped: not access-log entries\n"


def test_cli_reads_several_logs_as_a_table_and_csv(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("\n".join(LOG[:7]) + "\n")
    second.write_text("\n".join(LOG[7:]) + "\n")
    table = run_cli("--log", str(first), "--log", str(second), "Pulumi.team-research.yaml")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[6].split()[:3] == ["research", "openai", "5"]
    as_csv = run_cli("--format", "csv", "--log", str(first), "--log", str(second), "Pulumi.team-research.yaml")
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.splitlines()[-1] == "(total),(total),14,7,4,1,2,4,1,1,1,3,2,5,2100"


def _team_stack_without_platform(tmp_path: Path) -> str:
    path = tmp_path / "Pulumi.team-research.yaml"
    path.write_text((ROOT / "Pulumi.team-research.yaml").read_text())
    return str(path)


def _bad_stack(tmp_path: Path) -> str:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text((ROOT / "Pulumi.team-payments.yaml").read_text().replace("port: 8080", "port: 0"))
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda tmp: ["--log", "missing.log", "Pulumi.dev.yaml"], "missing.log: cannot be read (No such file"),
        (lambda tmp: ["--log", "-", "Pulumi.nothing.yaml"], "Pulumi.nothing.yaml: cannot be read (No such file"),
        (lambda tmp: ["--log", "-", _bad_stack(tmp)], "egress:destinations[partner-models].port:"),
        (lambda tmp: ["--log", "-", _team_stack_without_platform(tmp)], "Pulumi.dev.yaml: cannot be read (No such"),
    ],
    ids=["missing-log", "missing-stack", "invalid-stack", "platform-not-found"],
)
def test_cli_error_is_one_line_exit_2(args: Callable[[Path], list[str]], message: str, tmp_path: Path) -> None:
    out = run_cli(*args(tmp_path))
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: ")
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_the_report_imports_no_pulumi() -> None:
    code = "import sys, components.usage.__main__; print(sorted(m for m in sys.modules if m.startswith('pulumi')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
