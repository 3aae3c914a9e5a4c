"""Pinned upstream versions, where charts come from, and the one definition of "pinned".

Every chart, image and CRD bundle the platform installs is pinned here and nowhere else: stack
config may override a pin (`egress:platform.versions`), the CrossGuard pack checks charts and images
with `is_pinned_version` / `is_pinned_image`, and the tests derive the CRD schema paths from these pins
(`crd_globs`). Change a pin only together with the schemas the tests validate against (DESIGN.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GATEWAY_API_VERSION = "v1.6.1"
ISTIO_VERSION = "1.30.3"
KGATEWAY_VERSION = "v2.4.3"
KYVERNO_CHART_VERSION = "3.9.0"
KYVERNO_VERSION = "v1.19.0"  # the app version of chart 3.9.0: its CRDs, CLI and admission controller
KYVERNO_AUTHZ_CHART_VERSION = "0.4.0"
KYVERNO_AUTHZ_VERSION = "v0.4.0"  # the app version of chart 0.4.0: its bundled ValidatingPolicy CRD
# kind v0.30's default node; Kubernetes 1.34 is inside kgateway 2.4's supported 1.32-1.36. Charts are
# rendered for this version where no cluster is asked (devenv/chartrender.py).
KUBERNETES_VERSION = "v1.34.0"
# By digest, as kind's release notes publish it: node images are tested at exact digests.
KIND_NODE_IMAGE = (
    f"kindest/node:{KUBERNETES_VERSION}@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a"
)
OLLAMA_IMAGE = "ollama/ollama:0.12.6"
# Image the connectivity checks in the stack outputs run (curl only).
CURL_IMAGE = "curlimages/curl:8.16.0"

# Upstream chart repositories (used unless the platform names a mirror, see settings/config.py).
ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
KGATEWAY_CHART_PREFIX = "oci://cr.kgateway.dev/kgateway-dev/charts"
KYVERNO_REPO = "https://kyverno.github.io/kyverno/"
KYVERNO_AUTHZ_REPO = "https://kyverno.github.io/kyverno-authz"

# A version is pinned when it names exactly one release: no range operators, no wildcards, not latest.
_RANGE_CHARS = frozenset("^~*><=| ")


def is_pinned_version(version: object) -> bool:
    """An exact chart or release version (`1.30.3`, `v2.4.3`), not a range or `latest`."""
    return (
        isinstance(version, str)
        and bool(version)
        and version.lower() != "latest"
        and not version.lower().endswith(".x")
        and not any(c in _RANGE_CHARS for c in version)
    )


def is_pinned_image(image: object) -> bool:
    """An image pinned by digest, or by a tag that is an exact version (not latest)."""
    if not isinstance(image, str) or not image:
        return False
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and is_pinned_version(last.split(":", 1)[1])


def _pinned_version(value: str) -> str:
    if not is_pinned_version(value):
        raise ValueError(f"'{value}' is not a pinned version (name one exact release, e.g. {ISTIO_VERSION})")
    return value


def _pinned_image(value: str) -> str:
    if not is_pinned_image(value):
        raise ValueError(f"'{value}' is not a pinned image (name an exact tag or a digest)")
    return value


PinnedVersion = Annotated[str, AfterValidator(_pinned_version)]
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]


class Pins(BaseModel):
    """Every version a platform stack installs; the defaults are the pins above."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    gateway_api: PinnedVersion = GATEWAY_API_VERSION
    istio: PinnedVersion = ISTIO_VERSION
    kgateway: PinnedVersion = KGATEWAY_VERSION
    kyverno_chart: PinnedVersion = KYVERNO_CHART_VERSION
    kyverno_authz_chart: PinnedVersion = KYVERNO_AUTHZ_CHART_VERSION
    kind_node_image: PinnedImage = KIND_NODE_IMAGE
    ollama_image: PinnedImage = OLLAMA_IMAGE

    def gateway_api_crds_url(self) -> str:
        return (
            f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{self.gateway_api}/standard-install.yaml"
        )


def crd_globs() -> dict[str, str]:
    """Which CRD files (relative to the CRD folder, see shared/crds/SOURCES.md) serve which API group."""
    return {
        "gateway.networking.k8s.io": f"gateway-api/{GATEWAY_API_VERSION}/standard/*.yaml",
        "networking.istio.io": f"istio/{ISTIO_VERSION}/crd-all.gen.yaml",
        "gateway.kgateway.dev": f"kgateway/{KGATEWAY_VERSION}/*.yaml",
        "kyverno.io": f"kyverno/{KYVERNO_VERSION}/kyverno/*.yaml",
        # Admission's ValidatingPolicy (v1) as Kyverno serves it in the cluster ...
        "policies.kyverno.io (cluster)": (
            f"kyverno/{KYVERNO_VERSION}/policies.kyverno.io/policies.kyverno.io_validatingpolicies.yaml"
        ),
        # ... and Envoy-mode policy files as the authz server bundles the CRD (loaded last: its v1alpha1 wins).
        "policies.kyverno.io (authz files)": (
            f"kyverno-authz/{KYVERNO_AUTHZ_VERSION}/policies.kyverno.io_validatingpolicies.yaml"
        ),
    }
