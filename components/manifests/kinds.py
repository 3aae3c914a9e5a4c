"""The object type the builders return and the API versions they write."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

SERVICE_ENTRY_API = "networking.istio.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
REFERENCE_GRANT_API = "gateway.networking.k8s.io/v1beta1"
KGATEWAY_API = "gateway.kgateway.dev/v1alpha1"
AUTHZ_POLICY_API = "policies.kyverno.io/v1alpha1"
ISTIO_SECURITY_API = "security.istio.io/v1"
