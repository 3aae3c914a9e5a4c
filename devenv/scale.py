"""A platform of N teams, each with its namespace, its listener port and one approval: the size the
design holds (the scale test and `benchmarks/bench_program.py --teams`)."""

from __future__ import annotations

from typing import Any


def platform_config(teams: int) -> dict[str, Any]:
    """The `egress:*` values (keys without the namespace) of a kind platform without the demo upstream."""
    return {
        "platform": {"ollama": {"enabled": False}},
        "teams": [{"name": f"t{i}", "namespace": f"team-t{i}", "port": 10000 + i} for i in range(teams)],
        "approvals": [
            {
                "host": f"api{i}.example.com",
                "ports": [443],
                "teams": [f"t{i}"],
                "ticket": "SEC-1",
                "approvedBy": "security@corp.example",
                "expires": "2099-12-31",
            }
            for i in range(teams)
        ],
    }
