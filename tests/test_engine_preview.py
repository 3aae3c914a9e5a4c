"""Real engine: `pulumi preview` of team stacks against a seeded platform stack, with the policy pack.

The platform stack cannot be brought up here (its Helm releases need a cluster), so its outputs
are imported into the file backend (`pulumi stack import`) from tests/fixtures/platform-outputs.json.
The team stacks' kubeconfig (tests/fixtures/team-kubeconfig.yaml) points at a closed port on loopback:
the cluster is unreachable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.settings import config
from components.settings.names import RENDER_DIR_ENV

from .conftest import ROOT
from .engine import Engine, pulumi_bin

pytestmark = pytest.mark.skipif(
    pulumi_bin() is None, reason="needs the Pulumi CLI from scripts/bootstrap.sh (run through `make test`)"
)

FIXTURE = json.loads((ROOT / "tests/fixtures/platform-outputs.json").read_text())


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    e = Engine.create(tmp_path_factory.mktemp("engine"))
    e.seed_platform("dev", FIXTURE)
    return e


def _events(stdout: str) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads(stdout)
    return plan


def _planned(plan: dict[str, Any]) -> dict[str, str]:
    """type of each planned resource, by resource name (from the engine's JSON)."""
    return {s["urn"].rsplit("::", 1)[1]: s["urn"].split("::")[2].split("$")[-1] for s in plan.get("steps", [])}


def _team_stack(engine: Engine, stack: str, text: str | None = None) -> None:
    if text is not None:
        engine.write_stack(stack, text)
    engine.init(stack)


def test_team_preview_plans_the_team_objects_json(engine: Engine) -> None:
    """`pulumi preview --json` of a cluster-less stack: the plan is asserted on the engine's JSON."""
    _team_stack(engine, "team-payments")
    out = engine.preview("team-payments", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    plan = _events(out.stdout)
    planned = _planned(plan)
    expected = {
        "team-payments-partner-models": "egress:index:EgressPath",
        "team-payments-partner-models-serviceentry": "kubernetes:networking.istio.io/v1:ServiceEntry",
        "team-payments-partner-models-httproute": "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        "team-payments-partner-models-gatewayextension": "kubernetes:gateway.kgateway.dev/v1alpha1:GatewayExtension",
        "team-payments-partner-models-trafficpolicy": "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy",
        "platform": "pulumi:pulumi:StackReference",
    }
    for name, typ in expected.items():
        assert planned.get(name) == typ, (name, planned.get(name))
    ops = {s["urn"].rsplit("::", 1)[1]: s["op"] for s in plan["steps"]}
    assert ops["team-payments-partner-models-serviceentry"] == "create"
    se = next(s for s in plan["steps"] if s["urn"].endswith("::team-payments-partner-models-serviceentry"))
    props = se["newState"]["inputs"]
    assert props["spec"]["resolution"] == "STATIC"
    assert props["metadata"]["labels"]["security.corp/egress-approved"] == "true"


def test_approved_destination_passes_the_policy_pack(engine: Engine) -> None:
    _team_stack(engine, "team-research")
    out = engine.preview("team-research", "--policy-pack", "policies")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "egress-governance" in out.stdout
    assert "mandatory" not in out.stdout


def test_the_staging_team_stack_previews_against_the_staging_platform(engine: Engine) -> None:
    """`make preview STACK=team-research-staging`: the staging platform grants only what covers staging."""
    from components.manifests.approvals import to_output
    from components.settings.stackfile import load_stack

    staging = load_stack(ROOT / "Pulumi.staging.yaml")
    outputs = {**FIXTURE, "environment": "staging", "approvals": to_output(staging.approvals_in_force)}
    engine.seed_platform("staging", outputs)
    _team_stack(engine, "team-research-staging")
    out = engine.preview("team-research-staging", "--policy-pack", "policies")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mandatory" not in out.stdout
    # The same stack named for production, still reading staging: refused before anything is planned.
    _team_stack(engine, "team-research-prod", (ROOT / "Pulumi.team-research-staging.yaml").read_text())
    out = engine.preview("team-research-prod")
    assert out.returncode != 0 and "team-research-prod is a prod team stack but reads" in out.stdout + out.stderr


UNAPPROVED = """\
config:
  egress:platformStack: organization/egress/dev
  egress:team:
    name: research
    namespace: team-research
  egress:destinations:
    - name: scraper
      host: data.unvetted.example
      port: 443
      protocol: HTTPS
      authz:
        requireHeaders:
          x-egress-client: ["crawler"]
"""


def test_unapproved_destination_is_blocked_by_name(engine: Engine) -> None:
    _team_stack(engine, "team-research-unapproved", UNAPPROVED)
    out = engine.preview("team-research-unapproved", "--policy-pack", "policies")
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "[mandatory]  egress-approved-destinations" in text
    assert "team-research-scraper-serviceentry" in text
    assert "external host data.unvetted.example is not approved" in text


def test_expired_approval_is_blocked(engine: Engine) -> None:
    text = UNAPPROVED.replace("scraper", "legacy").replace("data.unvetted.example", "legacy.partner.example")
    _team_stack(engine, "team-research-expired", text)
    out = engine.preview("team-research-expired", "--policy-pack", "policies")
    assert out.returncode != 0
    assert "approval of external host legacy.partner.example expired on 2025-12-31" in out.stdout + out.stderr


def test_unapproved_then_approved_once_the_registry_covers_it(engine: Engine) -> None:
    """The same destination passes after the platform's registry approves it."""
    _team_stack(engine, "team-research-later", UNAPPROVED.replace("scraper", "later"))
    assert engine.preview("team-research-later", "--policy-pack", "policies").returncode != 0
    outputs = dict(FIXTURE)
    outputs["approvals"] = [
        *FIXTURE["approvals"],
        {
            "host": "data.unvetted.example",
            "ports": [443],
            "teams": ["research"],
            "ticket": "SEC-2001",
            "approvedBy": "security@corp.example",
            "expires": "2030-01-01",
        },
    ]
    engine.seed_platform("dev-approved", outputs)
    approved = UNAPPROVED.replace("scraper", "later").replace(
        "organization/egress/dev", "organization/egress/dev-approved"
    )
    _team_stack(engine, "team-research-later2", approved)
    out = engine.preview("team-research-later2", "--policy-pack", "policies")
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_config_is_one_error_and_nothing_planned(engine: Engine) -> None:
    _team_stack(engine, "team-bad", UNAPPROVED.replace("port: 443", "port: 0"))
    out = engine.preview("team-bad", "--json")
    assert out.returncode != 0
    plan = _events(out.stdout)
    errors = [d["message"] for d in plan.get("diagnostics", []) if d.get("severity") == "error"]
    assert any("egress:destinations[scraper].port: Input should be greater than or equal to 1" in e for e in errors), (
        errors
    )
    assert not any("Traceback" in e for e in errors)
    assert [s for s in plan.get("steps", []) if s["op"] == "create" and "kubernetes:" in s["urn"]] == []


def test_fixture_outputs_match_what_the_platform_program_exports() -> None:
    """The seeded outputs have the names and shapes the platform program exports."""
    from .test_platform_exports import platform_export_names

    assert set(FIXTURE) == platform_export_names()
    for a in FIXTURE["approvals"]:
        config.Approval.model_validate(a)
    assert set(FIXTURE["tryCommands"]) == {"allowed", "denied", "retries", "accessLog"}
    assert FIXTURE["teams"]["payments"] == {"namespace": "team-payments", "identity": "egress-tenants/team-payments"}


def test_gitops_render_writes_manifests_that_pass_the_schema_checks(engine: Engine, crds_dir: Path) -> None:
    """`make render`'s engine run: the provider writes the manifests instead of applying them.

    With KUBECONFIG set, as in most platform engineers' shells: the provider must not take it as its
    kubeconfig (it refuses one next to renderYamlToDirectory).
    """
    import shutil

    import yaml

    from .schemas import CelReport, SchemaIndex, validate

    shutil.copy(engine.workdir / "Pulumi.team-research.yaml", engine.workdir / "Pulumi.team-research-render.yaml")
    engine.init("team-research-render")
    out_dir = engine.workdir / "rendered" / "team-research"
    kubeconfig = engine.workdir.parent / "user-kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: user\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: user, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    env = {RENDER_DIR_ENV: str(out_dir), "KUBECONFIG": str(kubeconfig)}
    result = engine.run("up", "--stack", "team-research-render", "--yes", "--skip-preview", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    docs = [d for f in sorted(out_dir.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    # Only the team's own objects: its namespace, guard and grant are the platform's.
    assert kinds == sorted(["ServiceEntry", "HTTPRoute", "GatewayExtension", "TrafficPolicy", "BackendConfigPolicy"])
    index, report = SchemaIndex.load(crds_dir), CelReport()
    problems = [
        f"{d['kind']}: {e}"
        for d in docs
        if d["kind"] not in ("Namespace", "NetworkPolicy", "ConfigMap")
        for e in validate(index, d, report)
    ]
    assert problems == [] and report.failures == []
    se = next(d for d in docs if d["kind"] == "ServiceEntry")
    assert se["metadata"]["labels"]["security.corp/egress-approved"] == "true"


def test_enforcement_level_comes_from_the_pack_config(engine: Engine) -> None:
    """A stack may downgrade a policy through `--policy-pack-config`: the violation becomes advisory."""
    _team_stack(engine, "team-research-advisory", UNAPPROVED.replace("scraper", "advisory"))
    cfg = engine.workdir.parent / "advisory.json"
    cfg.write_text(json.dumps({"egress-approved-destinations": "advisory"}))
    out = engine.preview("team-research-advisory", "--policy-pack", "policies", "--policy-pack-config", str(cfg))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "[advisory]  egress-approved-destinations" in text


def test_render_stack_never_applies_without_the_render_directory(engine: Engine) -> None:
    import shutil

    shutil.copy(engine.workdir / "Pulumi.team-payments.yaml", engine.workdir / "Pulumi.team-payments-render.yaml")
    engine.init("team-payments-render")
    out = engine.preview("team-payments-render")
    assert out.returncode != 0
    assert "render stacks run only through `make render`" in out.stdout + out.stderr
