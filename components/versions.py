"""Pinned upstream versions: the single source for charts, images and CRD bundles.

Change a pin only together with the schemas the tests validate against (see DESIGN.md).
Stacks may override these through `egress:platform.versions`.
"""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_API_VERSION = "v1.6.1"

ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
ISTIO_VERSION = "1.30.3"

KGATEWAY_CHART_PREFIX = "oci://cr.kgateway.dev/kgateway-dev/charts"
KGATEWAY_VERSION = "v2.4.3"

KYVERNO_REPO = "https://kyverno.github.io/kyverno/"
KYVERNO_CHART_VERSION = "3.9.0"  # Kyverno v1.19.0

KYVERNO_AUTHZ_REPO = "https://kyverno.github.io/kyverno-authz"
KYVERNO_AUTHZ_CHART_VERSION = "0.4.0"
KYVERNO_AUTHZ_IMAGE = "ghcr.io/kyverno/kyverno-authz:v0.4.0"

# kind v0.30's default node; Kubernetes 1.34 is inside kgateway 2.4's supported 1.32-1.36.
KIND_NODE_IMAGE = "kindest/node:v1.34.0"
OLLAMA_IMAGE = "ollama/ollama:0.12.6"
# Image the connectivity checks in the stack outputs run (curl only).
CURL_IMAGE = "curlimages/curl:8.16.0"


@dataclass(frozen=True)
class Pins:
    """Every version a platform stack installs; defaults are the module constants above."""

    gateway_api: str = GATEWAY_API_VERSION
    istio: str = ISTIO_VERSION
    kgateway: str = KGATEWAY_VERSION
    kyverno_chart: str = KYVERNO_CHART_VERSION
    kyverno_authz_chart: str = KYVERNO_AUTHZ_CHART_VERSION
    kind_node_image: str = KIND_NODE_IMAGE
    ollama_image: str = OLLAMA_IMAGE

    def gateway_api_crds_url(self) -> str:
        return (
            f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{self.gateway_api}/standard-install.yaml"
        )
