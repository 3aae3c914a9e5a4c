"""Stack config: defaults, and one clear line for each kind of bad input."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from typing import Any

import pytest

from components.settings import config
from components.settings.config import ConfigError

from .conftest import ROOT


def _dest(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "ollama",
        "host": "ollama.external",
        "port": 11434,
        "protocol": "HTTP",
        "authz": {"requireHeaders": {"x-force-authorized": ["true", "enabled"]}},
    }
    d.update(over)
    return d


def _stack(*dests: dict[str, Any], **over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "platform": {},
        "team": {"name": "ml", "namespace": "team-ml"},
        "teams": [{"name": "ml", "namespace": "team-ml", "port": 10001}],
        "destinations": list(dests),
    }
    s.update(over)
    return s


def test_safe_defaults() -> None:
    d = config.parse(_stack(_dest())).destinations[0]
    assert d.fail_open is False
    assert d.timeout == "30s"
    assert d.retries.attempts == 2 and d.retries.per_try_timeout == "10s"
    assert d.addresses is None


def test_platform_defaults_are_the_pins() -> None:
    from components.settings import versions

    p = config.parse({"platform": {}}).platform
    assert p is not None
    assert p.cluster.mode == "kind" and p.cluster.name == "egress-dev"
    assert p.versions == versions.Pins()


def test_no_header_requirement_means_identity_alone() -> None:
    d = config.parse(_stack(_dest(authz={"requireHeaders": {}}))).destinations[0]
    assert d.authz.require_headers == {}
    d = config.parse(_stack(_dest(authz={"denyMessage": "no"}))).destinations[0]
    assert d.authz.require_headers == {} and d.authz.deny_message == "no"


def test_header_names_are_lowercased() -> None:
    d = config.parse(_stack(_dest(authz={"requireHeaders": {"X-Team": ["a"]}}))).destinations[0]
    assert d.authz.require_headers == {"x-team": ["a"]}


@pytest.mark.parametrize(
    ("dest", "expected"),
    [
        (_dest(port=0), "egress:destinations[ollama].port:"),
        (_dest(port=70000), "egress:destinations[ollama].port:"),
        (_dest(host="*.openai.com"), "egress:destinations[ollama].host: '*.openai.com' is a wildcard"),
        (_dest(host="bad_host..com"), "egress:destinations[ollama].host: 'bad_host..com' is not a DNS name"),
        (_dest(name="Ollama"), "egress:destinations[Ollama].name: 'Ollama' is not a DNS label"),
        (_dest(timeout="30"), "egress:destinations[ollama].timeout: '30' is not a duration"),
        (_dest(timeout="1.5s"), "egress:destinations[ollama].timeout: '1.5s' is not a duration"),
        (_dest(timeout="10m"), "exceeds the 5m bound"),
        (
            _dest(timeout="10s", retries={"perTryTimeout": "10s"}),
            "egress:destinations[ollama]: retries.perTryTimeout (10s) must be below timeout (10s)",
        ),
        (_dest(retries={"attempts": 50}), "egress:destinations[ollama].retries.attempts:"),
        (_dest(retries={"statusCodes": [200]}), "status codes must be within 400-599"),
        (_dest(protocol="TCP"), "egress:destinations[ollama].protocol: must be 'HTTP' or 'HTTPS'"),
        (_dest(addresses=["not-an-ip"]), "egress:destinations[ollama].addresses: 'not-an-ip' is not an IP address"),
        (_dest(failopen=True), "egress:destinations[ollama].failopen: unknown key"),
        (_dest(authz={"requireHeaders": {"x": ["a\nb"]}}), "header 'x': 'a\\nb' is not a header value"),
        (_dest(authz={"requireHeaders": {"x": [" a"]}}), "header 'x': ' a' is not a header value"),
        (_dest(authz={"requireHeaders": {"x": []}}), "header 'x' needs at least one non-empty allowed value"),
    ],
)
def test_bad_destination_is_one_line_naming_destination_and_field(dest: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(_stack(dest))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_names_and_hosts() -> None:
    with pytest.raises(ConfigError, match=r"destinations\[ollama\].name: duplicate destination name"):
        config.parse(_stack(_dest(), _dest(host="other.example")))
    with pytest.raises(
        ConfigError, match=r"destinations\[b\].host: 'ollama.external' is already used by destination 'ollama'"
    ):
        config.parse(_stack(_dest(), _dest(name="b")))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"platfrom": {}}, "egress:platfrom: unknown key"),
        ({}, "egress:platform or egress:platformStack: one of them is required"),
        ({"platform": {}, "platformStack": "organization/egress/dev"}, "not both"),
        ({"platformStack": "dev"}, "must be organization/<project>/<stack>"),
        ({"platform": {"cluster": {"mode": "eks"}}}, "egress:platform.cluster.mode: must be 'kind' or 'existing'"),
        (
            {"platform": {"versions": {"istio": "latest"}}},
            "egress:platform.versions.istio: 'latest' is not a pinned version",
        ),
        (
            {"platformStack": "organization/egress/dev", "approvals": []},
            None,
        ),
        (
            {
                "platformStack": "organization/egress/dev",
                "approvals": [
                    {
                        "host": "a.example",
                        "ports": [443],
                        "teams": ["ml"],
                        "ticket": "T",
                        "approvedBy": "s@x",
                        "expires": "2030-01-01",
                    }
                ],
            },
            "a team cannot approve its own destinations",
        ),
        ({"platform": {}, "destinations": [_dest()]}, "egress:team: required"),
    ],
)
def test_stack_level_errors(raw: dict[str, Any], expected: str | None) -> None:
    if expected is None:
        config.parse(raw)
        return
    with pytest.raises(ConfigError) as err:
        config.parse(raw)
    assert expected in str(err.value)


def test_ollama_destination_takes_the_container_address() -> None:
    with pytest.raises(ConfigError, match=r"destinations\[ollama\].addresses: omit it"):
        config.parse(_stack(_dest(addresses=["10.0.0.1"])))


def test_duration_arithmetic() -> None:
    assert config.duration_ms("1m30s") == 90_000
    assert config.duration_ms("250ms") == 250
    assert config.duration_ms("1h") == 3_600_000


@pytest.mark.parametrize("path", ["Pulumi.dev.yaml", "Pulumi.team-research.yaml", "Pulumi.team-payments.yaml"])
def test_render_cli_succeeds_on_examples(path: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "components.manifests", path], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\nkind: ServiceEntry") + out.stdout.startswith("kind: ServiceEntry") >= 1


def test_render_cli_bad_config_is_one_line_without_traceback(tmp_path: Any) -> None:
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text((ROOT / "Pulumi.team-payments.yaml").read_text().replace("port: 8080", "port: 0"))
    out = subprocess.run(
        [sys.executable, "-m", "components.manifests", str(bad)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: egress:destinations[partner-models].port:")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("namespace", ["kube-system", "kyverno", "egress-system", "default", "kube-anything"])
def test_a_team_cannot_claim_a_platform_or_reserved_namespace(namespace: str) -> None:
    with pytest.raises(ConfigError, match=rf"egress:team.namespace: '{namespace}' is reserved for the platform"):
        config.parse({"platformStack": "organization/egress/dev", "team": {"name": "x", "namespace": namespace}})
    with pytest.raises(ConfigError, match=rf"egress:teams\[x\].namespace: '{namespace}' is reserved"):
        config.parse({"platform": {}, "teams": [{"name": "x", "namespace": namespace, "port": 10001}]})


def test_the_team_registry_belongs_to_the_platform_and_maps_one_namespace_to_one_team() -> None:
    with pytest.raises(ConfigError, match="egress:teams: only the platform stack says which namespace a team owns"):
        config.parse(
            {"platformStack": "organization/egress/dev", "teams": [{"name": "a", "namespace": "team-a", "port": 10001}]}
        )
    both = [{"name": "a", "namespace": "team-a", "port": 10001}, {"name": "b", "namespace": "team-a", "port": 10002}]
    with pytest.raises(ConfigError, match=r"egress:teams\[b\].namespace: 'team-a' already belongs to team 'a'"):
        config.parse({"platform": {}, "teams": both})


def test_each_team_has_a_listener_port_of_its_own_in_the_team_range() -> None:
    a = {"name": "a", "namespace": "team-a", "port": 10001}
    with pytest.raises(ConfigError, match=r"egress:teams\[b\].port: 10001 already belongs to team 'a'"):
        config.parse({"platform": {}, "teams": [a, {"name": "b", "namespace": "team-b", "port": 10001}]})
    for port in (80, 9999, 15000, 15008):
        with pytest.raises(ConfigError, match=r"egress:teams\[b\].port: Input should be (greater|less) than"):
            config.parse({"platform": {}, "teams": [{"name": "b", "namespace": "team-b", "port": port}]})
    with pytest.raises(ConfigError, match=r"egress:teams\[b\].port: Field required"):
        config.parse({"platform": {}, "teams": [{"name": "b", "namespace": "team-b"}]})


def test_approvals_name_registered_teams_and_addresses() -> None:
    approval = {"host": "a.example", "ports": [443], "teams": ["ghost"], "ticket": "T-1"}
    approval |= {"approvedBy": "s@corp.example", "expires": "2027-01-01"}
    with pytest.raises(ConfigError, match=r"egress:approvals\[a.example\].teams: team 'ghost' is not in egress:teams"):
        config.parse({"platform": {}, "approvals": [approval]})
    teams = [{"name": "ghost", "namespace": "team-ghost", "port": 10001}]
    with pytest.raises(ConfigError, match=r"egress:approvals\[a.example\].addresses: 'nope' is not an IP address"):
        config.parse({"platform": {}, "teams": teams, "approvals": [approval | {"addresses": ["nope"]}]})


# --- credentials and budgets -----------------------------------------------------------------------

CRED = {"header": "Authorization", "format": "Bearer {}", "secret": "ollama-key"}


def test_a_credential_names_a_secret_of_the_stack() -> None:
    cfg = config.parse(_stack(_dest(credential=CRED), credentials={"ollama-key": "sk-1"}))
    cred = cfg.destinations[0].credential
    assert cred is not None and cred.value(cfg.credentials["ollama-key"].get_secret_value()) == "Bearer sk-1"
    assert "sk-1" not in repr(cfg) and "sk-1" not in str(cfg.credentials)  # never printed
    with pytest.raises(ConfigError, match=r"egress:destinations\[ollama\].credential.secret: 'ollama-key' is not in"):
        config.parse(_stack(_dest(credential=CRED)))


@pytest.mark.parametrize(
    ("cred", "expected"),
    [
        ({**CRED, "format": "Bearer"}, "credential.format: must hold '{}' once"),
        ({**CRED, "format": "{} {}"}, "credential.format: must hold '{}' once"),
        ({**CRED, "format": "Bearer\n{}"}, "credential.format: must hold '{}' once"),
        ({**CRED, "header": "Bad Header"}, "credential.header: 'Bad Header' is not a valid header name"),
        ({**CRED, "secret": "Not_A_Label"}, "credential.secret: 'Not_A_Label' is not a DNS label"),
    ],
)
def test_bad_credentials(cred: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"egress:destinations[ollama].{expected}")):
        config.parse(_stack(_dest(credential=cred), credentials={"ollama-key": "x"}))


def test_credentials_must_be_secrets_in_the_stack_config() -> None:
    with pytest.raises(
        ConfigError, match=r"egress:credentials.ollama-key: must be a secret: pulumi config set --secret"
    ):
        config.check_credentials_secret({"credentials": {"ollama-key": "sk-plain"}}, is_secret=False)
    config.check_credentials_secret({"credentials": {"ollama-key": {"secure": "v1:abc"}}}, is_secret=False)
    config.check_credentials_secret({"credentials": {"ollama-key": "sk-decrypted"}}, is_secret=True)


def test_a_stack_file_with_a_plaintext_credential_is_refused(tmp_path: Any) -> None:
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    start = text.index("  egress:credentials:")
    end = text.index("  # Which namespace each team owns")
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(text[:start] + "  egress:credentials:\n    ollama-key: sk-in-clear\n" + text[end:])
    out = subprocess.run(
        [sys.executable, "-m", "components.manifests", str(bad)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 1 and "egress:credentials.ollama-key: must be a secret" in out.stderr, out.stderr
    assert "sk-in-clear" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"requests": 0}, "budget.requests: Input should be greater than or equal to 1"),
        ({"requests": 10, "per": "10ms"}, "budget.per: '10ms' is below the gateway's 50ms refill interval"),
        ({"requests": 10, "per": "1x"}, "budget.per: '1x' is not a duration"),
        ({"requests": 10, "burst": 0}, "budget.burst: Input should be greater than or equal to 1"),
    ],
)
def test_bad_budgets(budget: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"egress:destinations[ollama].{expected}")):
        config.parse(_stack(_dest(budget=budget)))


def test_budget_comparison_is_exact() -> None:
    ceiling = config.Budget(requests=120, per="1m", burst=40)
    assert config.Budget(requests=2, per="1s", burst=40).within(ceiling)
    assert not config.Budget(requests=121, per="1m", burst=40).within(ceiling)
    assert not config.Budget(requests=60, per="1m", burst=41).within(ceiling)
    assert config.Budget(requests=40).max_tokens == 40  # burst defaults to the requests


# --- environments ----------------------------------------------------------------------------------

STAGING = {
    "environment": "staging",
    "cluster": {"mode": "existing"},
    "ollama": {"enabled": False},
    "sources": {"chartRepository": "https://charts.mirror.example"},
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cluster": {"mode": "kind"}}, "egress:platform.cluster.mode: staging runs on an existing cluster"),
        ({"ollama": {"enabled": True}}, "egress:platform.ollama.enabled: the demo upstream is for dev only"),
        ({"sources": {}}, "egress:platform.sources: staging installs charts from your mirror"),
        ({"waitForReady": False}, "egress:platform.waitForReady: staging waits for its workloads to be ready"),
    ],
)
def test_what_staging_refuses(change: dict[str, Any], expected: str) -> None:
    config.parse({"platform": STAGING})
    with pytest.raises(ConfigError, match=re.escape(expected)):
        config.parse({"platform": {**STAGING, **change}})


def _approval(**over: Any) -> dict[str, Any]:
    a = {
        "host": "api.openai.com",
        "ports": [443],
        "teams": ["research"],
        "ticket": "SEC-1",
        "approvedBy": "sec@corp.example",
        "expires": (dt.date.today() + dt.timedelta(days=90)).isoformat(),
        "environments": ["prod"],
    }
    a.update(over)
    return a


def test_production_approvals_are_stricter() -> None:
    prod = {
        "platform": {**STAGING, "environment": "prod"},
        "teams": [{"name": "research", "namespace": "team-r", "port": 10002}],
    }
    config.parse({**prod, "approvals": [_approval()]})
    with pytest.raises(ConfigError, match=r"approvals\[api.openai.com\].allowFailOpen: production approvals never"):
        config.parse({**prod, "approvals": [_approval(allowFailOpen=True)]})
    far = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    with pytest.raises(ConfigError, match=r"approvals\[api.openai.com\].expires: production approvals run at most"):
        config.parse({**prod, "approvals": [_approval(expires=far)]})
    # The same approval, for staging only, is not production's concern.
    config.parse({**prod, "approvals": [_approval(expires=far, allowFailOpen=True, environments=["staging"])]})


def test_a_platform_grants_only_the_approvals_of_its_environment() -> None:
    teams = [{"name": "research", "namespace": "team-r", "port": 10002}]
    approvals = [
        _approval(host="a.example", environments=["dev"]),
        _approval(host="b.example", environments=["staging"]),
    ]
    staging = config.parse({"platform": STAGING, "teams": teams, "approvals": approvals})
    assert [a.host for a in staging.approvals_in_force] == ["b.example"]
    dev = config.parse({"platform": {}, "teams": teams, "approvals": approvals})
    assert [a.host for a in dev.approvals_in_force] == ["a.example"]
    with pytest.raises(
        ConfigError, match=re.escape("approvals[api.openai.com].environments[0]: must be 'dev', 'staging' or 'prod'")
    ):
        config.parse({"platform": {}, "teams": teams, "approvals": [_approval(environments=["qa"])]})


@pytest.mark.parametrize(
    ("stack", "platform", "expected"),
    [
        ("team-research", "organization/egress/dev", None),
        ("team-research-staging", "organization/egress/staging", None),
        ("team-research-prod-render", "organization/egress/prod", None),
        ("team-research-staging", "organization/egress/dev", "team-research-staging is a staging team stack but reads"),
        (
            "team-research",
            "organization/egress/prod",
            "a prod platform (team stacks of prod are named team-<name>-prod)",
        ),
    ],
)
def test_team_stacks_are_named_for_their_environment(stack: str, platform: str, expected: str | None) -> None:
    if expected is None:
        config.check_team_stack_name(stack, platform)
    else:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            config.check_team_stack_name(stack, platform)


def test_the_environments_share_one_registry() -> None:
    """Security keeps one list: the platform stacks' teams and approvals are the same everywhere."""
    from components.settings.stackfile import load_stack_file

    files = [load_stack_file(ROOT / f"Pulumi.{env}.yaml") for env in ("dev", "staging", "prod")]
    assert all(f["teams"] == files[0]["teams"] and f["approvals"] == files[0]["approvals"] for f in files)
    envs = {f["platform"].get("environment", "dev") for f in files}
    assert envs == {"dev", "staging", "prod"}
