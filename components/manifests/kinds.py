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

# When the kubernetes provider counts an object ready (`pulumi.com/waitFor`, kubectl wait's syntax):
# Kyverno's policies once it has configured their webhooks (a ClusterPolicy's Ready condition, a
# ValidatingPolicy's status.conditionStatus.ready), the Gateway once its controller programmed it.
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"
READY_WHEN: dict[str, str] = {
    "ClusterPolicy": "condition=Ready",
    "ValidatingPolicy": "jsonpath={.status.conditionStatus.ready}=true",
    "Gateway": "condition=Programmed",
}


def awaited(obj: Obj) -> Obj:
    """`obj` with the annotation that makes `pulumi up` wait until its kind's READY_WHEN holds."""
    meta = obj["metadata"]
    annotations = {**meta.get("annotations", {}), WAIT_FOR_ANNOTATION: READY_WHEN[obj["kind"]]}
    return {**obj, "metadata": {**meta, "annotations": annotations}}
