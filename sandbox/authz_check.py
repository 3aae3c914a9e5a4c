"""A direct gRPC `Check` to the authz server, the call Envoy's ext_authz filter makes.

The Envoy API's Python modules are not published on PyPI, so the few messages a Check needs are
declared here (devenv/protodesc.py) from envoy/service/auth/v3/{external_auth,attribute_context}.proto
(field names and numbers as upstream; the fields the sandbox does not use are left out, which protobuf allows).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from devenv.protodesc import INT32, INT64, MESSAGE, STRING, UINT32, Schema

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"


def _schema() -> Schema:
    s = Schema("egress.sandbox.authz")  # a private name: never registers as the upstream messages
    s.message(
        "SocketAddress",  # envoy/config/core/v3/address.proto
        [("address", 2, STRING, None, False), ("port_value", 3, UINT32, None, False)],
    )
    s.message("Address", [("socket_address", 1, MESSAGE, "SocketAddress", False)])
    s.message(
        "Peer",  # AttributeContext.Peer
        [("address", 1, MESSAGE, "Address", False), ("principal", 4, STRING, None, False)],
    )
    http = s.message(
        "HttpRequest",  # AttributeContext.HttpRequest
        [
            ("id", 1, STRING, None, False),
            ("method", 2, STRING, None, False),
            ("headers", 3, MESSAGE, "HttpRequest.HeadersEntry", True),
            ("path", 4, STRING, None, False),
            ("host", 5, STRING, None, False),
            ("scheme", 6, STRING, None, False),
            ("protocol", 10, STRING, None, False),
        ],
    )
    s.map_entry(http, "HeadersEntry")
    # google/protobuf/timestamp.proto, under the private name (the same wire format)
    s.message("Timestamp", [("seconds", 1, INT64, None, False), ("nanos", 2, INT32, None, False)])
    s.message(  # AttributeContext.Request
        "Request", [("time", 1, MESSAGE, "Timestamp", False), ("http", 2, MESSAGE, "HttpRequest", False)]
    )
    attributes = s.message(
        "AttributeContext",
        [
            ("source", 1, MESSAGE, "Peer", False),
            ("destination", 2, MESSAGE, "Peer", False),
            ("request", 4, MESSAGE, "Request", False),
            ("context_extensions", 10, MESSAGE, "AttributeContext.ContextExtensionsEntry", True),
        ],
    )
    s.map_entry(attributes, "ContextExtensionsEntry")
    s.message("CheckRequest", [("attributes", 1, MESSAGE, "AttributeContext", False)])
    s.message("Status", [("code", 1, INT32, None, False), ("message", 2, STRING, None, False)])
    s.message("HttpStatus", [("code", 1, INT32, None, False)])  # an enum upstream; same wire type
    s.message("DeniedHttpResponse", [("status", 1, MESSAGE, "HttpStatus", False), ("body", 3, STRING, None, False)])
    s.message(
        "CheckResponse",
        [
            ("status", 1, MESSAGE, "Status", False),  # google.rpc.Status
            ("denied_response", 2, MESSAGE, "DeniedHttpResponse", False),
        ],
    )
    return s


CheckRequest, CheckResponse = _schema().classes("CheckRequest", "CheckResponse")


@dataclass(frozen=True)
class Decision:
    allowed: bool  # google.rpc.Status code OK
    http_status: int  # the denied response's HTTP status (0 when allowed)
    body: str  # the denied response's body

    def __str__(self) -> str:
        return "allowed" if self.allowed else f"denied {self.http_status} {self.body!r}"


def check(
    address: str,
    host: str,
    headers: Mapping[str, str] | None = None,
    port: int = 0,
    context: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    principal: str = "",
    at: float | None = None,
) -> Decision:
    """One Check, as Envoy sends it from a plain-HTTP listener (header keys lowercased, `:authority`
    among the headers): `destination.address` is the listener's address and `port` (the connection's
    local address), and no `source.principal` (Envoy fills it only from a downstream TLS peer
    certificate; `principal` exists for the negative control). `request.time` is now, or `at` (seconds
    since the epoch), as Envoy sets it from the stream's start (check_request_utils.cc setRequestTime)."""
    req = CheckRequest()
    attrs = req.attributes
    when = time.time() if at is None else at
    attrs.request.time.seconds, attrs.request.time.nanos = int(when), int((when % 1) * 1e9)
    attrs.destination.address.socket_address.address = "127.0.0.1"
    attrs.destination.address.socket_address.port_value = port
    if principal:
        attrs.source.principal = principal
    http = attrs.request.http
    http.method, http.path, http.host, http.scheme, http.protocol = "GET", "/", host, "http", "HTTP/1.1"
    http.headers.update({":authority": host, ":method": "GET", ":path": "/"})
    http.headers.update({k.lower(): v for k, v in (headers or {}).items()})
    attrs.context_extensions.update(dict(context or {}))
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=CheckResponse.FromString,
        )
        resp = call(req, timeout=timeout)
    allowed = resp.status.code == 0
    return Decision(allowed, 0 if allowed else resp.denied_response.status.code, resp.denied_response.body)
