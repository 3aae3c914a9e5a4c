"""A minimal Kubernetes API client for checks: read objects back from the API server, not our outputs."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

# Where each kind the checks read lives: (API path prefix, plural, namespaced).
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("api/v1", "namespaces", False),
    "ConfigMap": ("api/v1", "configmaps", True),
    "ServiceAccount": ("api/v1", "serviceaccounts", True),
    "Secret": ("api/v1", "secrets", True),
    "Role": ("apis/rbac.authorization.k8s.io/v1", "roles", True),
    "ClusterRole": ("apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "RoleBinding": ("apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "Deployment": ("apis/apps/v1", "deployments", True),
    "DaemonSet": ("apis/apps/v1", "daemonsets", True),
    "CustomResourceDefinition": ("apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "Gateway": ("apis/gateway.networking.k8s.io/v1", "gateways", True),
    "ListenerSet": ("apis/gateway.networking.k8s.io/v1", "listenersets", True),
    "AuthorizationPolicy": ("apis/security.istio.io/v1", "authorizationpolicies", True),
    "PeerAuthentication": ("apis/security.istio.io/v1", "peerauthentications", True),
    "HTTPRoute": ("apis/gateway.networking.k8s.io/v1", "httproutes", True),
    "ServiceEntry": ("apis/networking.istio.io/v1", "serviceentries", True),
    "TrafficPolicy": ("apis/gateway.kgateway.dev/v1alpha1", "trafficpolicies", True),
    "GatewayExtension": ("apis/gateway.kgateway.dev/v1alpha1", "gatewayextensions", True),
    "ListenerPolicy": ("apis/gateway.kgateway.dev/v1alpha1", "listenerpolicies", True),
    "BackendConfigPolicy": ("apis/gateway.kgateway.dev/v1alpha1", "backendconfigpolicies", True),
    "ValidatingWebhookConfiguration": (
        "apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        False,
    ),
    "ClusterPolicy": ("apis/kyverno.io/v1", "clusterpolicies", False),
    "ValidatingPolicy": ("apis/policies.kyverno.io/v1", "validatingpolicies", False),
    "NetworkPolicy": ("apis/networking.k8s.io/v1", "networkpolicies", True),
    "ReferenceGrant": ("apis/gateway.networking.k8s.io/v1beta1", "referencegrants", True),
}


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # the parsed JSON, or the text where the server sent none
    warnings: list[str]

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message", self.body))
        return str(self.body)


@dataclass(frozen=True)
class KubeApi:
    server: str
    token: str
    context: ssl.SSLContext

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float = 30.0,
    ) -> Response:
        """One API call; HTTP errors are answers too (their status and body), not exceptions."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.server}/{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", content_type)
        req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=timeout) as resp:
                raw, status, headers = resp.read(), int(resp.status), resp.headers
        except urllib.error.HTTPError as err:
            raw, status, headers = err.read(), err.code, err.headers
        try:
            parsed: Any = json.loads(raw or b"null")
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Response(status, parsed, list(headers.get_all("Warning") or []))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.call(method, path, body)
        return response.status, response.body

    def _path(self, kind: str, namespace: str | None, name: str | None = None) -> str:
        prefix, plural, namespaced = KINDS[kind]
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{prefix}/{plural}"
        return f"{path}/{name}" if name else path

    def item_path(self, obj: dict[str, Any]) -> str:
        """The API path of an object (its kind must be in KINDS)."""
        return self._path(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        status, body = self.request("GET", self._path(kind, namespace, name))
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"GET {kind} {namespace}/{name}: {status} {body}")
        out: dict[str, Any] = body
        return out

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        path = self._path(kind, namespace)
        if selector:
            path += "?" + urllib.parse.urlencode({"labelSelector": selector})
        status, body = self.request("GET", path)
        if status == 404:  # the kind's CRD is not installed
            return []
        if status != 200:
            raise RuntimeError(f"LIST {kind}: {status} {body}")
        items: list[dict[str, Any]] = body["items"]
        return items
