"""A pinned chart rendered as the platform stack installs it, without a cluster: the objects Helm makes.

The kubernetes provider plugin (the pinned one the platform uses) renders charts with Helm's own template
engine behind its `kubernetes:helm:template` function; `pulumi_kubernetes.helm.v3.Chart` calls it
the same way. Here a one-line Pulumi program calls it during a `pulumi preview` on a throwaway local
backend and hands the objects back, so that a test can install exactly the chart's RBAC (or anything
else it renders) into a local control plane.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi import automation as auto

from components.settings import versions

from . import automation


class ChartRenderError(RuntimeError):
    """The chart could not be rendered (the CLI or plugin missing, a template error)."""


def render(
    chart_dir: Path, *, release: str, namespace: str, values: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every object `helm template` makes of the chart at `chart_dir` (CRDs too), in its order."""
    if not (chart_dir / "Chart.yaml").is_file():
        raise ChartRenderError(f"no chart at {chart_dir} (Chart.yaml missing)")
    rendered: list[dict[str, Any]] = []

    # The options as pulumi_kubernetes.helm.v3.Chart sends them (helm/v3/helm.py of the pinned SDK:
    # BaseChartOpts.to_json, the attributes by their Python names; _parse_chart makes the same call).
    json_opts = json.dumps(
        {
            "path": str(chart_dir),
            "release_name": release,
            "namespace": namespace,
            "values": dict(values or {}),
            "kube_version": versions.KUBERNETES_VERSION,
        }
    )

    def program() -> None:
        result = pulumi.runtime.invoke("kubernetes:helm:template", {"jsonOpts": json_opts})
        rendered.extend((result.value or {}).get("result") or [])

    with tempfile.TemporaryDirectory(prefix="chart-render-") as tmp:
        # No cluster: the function renders offline with the given Kubernetes version.
        env = {"KUBECONFIG": str(Path(tmp) / "no-kubeconfig")}
        try:
            automation.throwaway_stack(Path(tmp), program, env, project="egress-chart-render").preview(color="never")
        except (automation.AutomationError, auto.errors.CommandError) as err:
            why = automation.errors_of(err) if isinstance(err, auto.errors.CommandError) else str(err)
            raise ChartRenderError(f"rendering {chart_dir.name}: {why}") from err
    if not rendered:
        raise ChartRenderError(f"rendering {chart_dir.name} gave no objects")
    return [json.loads(json.dumps(obj)) for obj in rendered]
