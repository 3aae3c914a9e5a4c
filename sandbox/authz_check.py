"""A direct gRPC `Check` to the authz server, the call Envoy's ext_authz filter makes.

The Envoy API's Python modules are not published on PyPI, so the few messages a Check needs are
declared here from envoy/service/auth/v3/{external_auth,attribute_context}.proto (field names and
numbers as upstream; the fields the sandbox does not use are left out, which protobuf allows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

_PACKAGE = "egress.sandbox.authz"  # a private name: never registers as the upstream messages
CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _INT32, _UINT32, _MESSAGE = _F.TYPE_STRING, _F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_MESSAGE
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED


def _message(name: str, fields: list[tuple[str, int, int, str | None, bool]]) -> descriptor_pb2.DescriptorProto:
    """fields: (name, number, type, message type name or None, repeated)."""
    msg = descriptor_pb2.DescriptorProto(name=name)
    for fname, number, ftype, type_name, repeated in fields:
        field = msg.field.add(name=fname, number=number, type=ftype, label=_REPEATED if repeated else _OPTIONAL)
        if type_name is not None:
            field.type_name = f".{_PACKAGE}.{type_name}"
    return msg


def _map_entry(name: str) -> descriptor_pb2.DescriptorProto:
    entry = _message(name, [("key", 1, _STRING, None, False), ("value", 2, _STRING, None, False)])
    entry.options.map_entry = True
    return entry


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="egress_sandbox_authz.proto", package=_PACKAGE, syntax="proto3")
    socket_address = _message(
        "SocketAddress",  # envoy/config/core/v3/address.proto
        [("address", 2, _STRING, None, False), ("port_value", 3, _UINT32, None, False)],
    )
    address = _message("Address", [("socket_address", 1, _MESSAGE, "SocketAddress", False)])
    peer = _message(
        "Peer",  # AttributeContext.Peer
        [("address", 1, _MESSAGE, "Address", False), ("principal", 4, _STRING, None, False)],
    )
    http = _message(
        "HttpRequest",  # AttributeContext.HttpRequest
        [
            ("id", 1, _STRING, None, False),
            ("method", 2, _STRING, None, False),
            ("headers", 3, _MESSAGE, "HttpRequest.HeadersEntry", True),
            ("path", 4, _STRING, None, False),
            ("host", 5, _STRING, None, False),
            ("scheme", 6, _STRING, None, False),
            ("protocol", 10, _STRING, None, False),
        ],
    )
    http.nested_type.append(_map_entry("HeadersEntry"))
    request = _message("Request", [("http", 2, _MESSAGE, "HttpRequest", False)])  # AttributeContext.Request
    attributes = _message(
        "AttributeContext",
        [
            ("source", 1, _MESSAGE, "Peer", False),
            ("destination", 2, _MESSAGE, "Peer", False),
            ("request", 4, _MESSAGE, "Request", False),
            ("context_extensions", 10, _MESSAGE, "AttributeContext.ContextExtensionsEntry", True),
        ],
    )
    attributes.nested_type.append(_map_entry("ContextExtensionsEntry"))
    check_request = _message("CheckRequest", [("attributes", 1, _MESSAGE, "AttributeContext", False)])
    status = _message("Status", [("code", 1, _INT32, None, False), ("message", 2, _STRING, None, False)])
    http_status = _message("HttpStatus", [("code", 1, _INT32, None, False)])  # an enum upstream; same wire type
    denied = _message(
        "DeniedHttpResponse", [("status", 1, _MESSAGE, "HttpStatus", False), ("body", 3, _STRING, None, False)]
    )
    check_response = _message(
        "CheckResponse",
        [
            ("status", 1, _MESSAGE, "Status", False),  # google.rpc.Status
            ("denied_response", 2, _MESSAGE, "DeniedHttpResponse", False),
        ],
    )
    f.message_type.extend(
        [
            socket_address,
            address,
            peer,
            http,
            request,
            attributes,
            check_request,
            status,
            http_status,
            denied,
            check_response,
        ]
    )
    return f


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
CheckRequest: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.CheckRequest"))
CheckResponse: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.CheckResponse"))


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
) -> Decision:
    """One Check, as Envoy sends it from a plain-HTTP listener (header keys lowercased, `:authority`
    among the headers): `destination.address` is the listener's address and `port` (the connection's
    local address), and no `source.principal` (Envoy fills it only from a downstream TLS peer
    certificate; `principal` exists for the negative control)."""
    req = CheckRequest()
    attrs = req.attributes
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
