"""Protobuf messages declared in code, for the few upstream gRPC APIs the tests speak.

The upstream Python modules (Envoy's, Istio's) are not published on PyPI, so a caller declares the
messages it needs here with upstream's field names and numbers, leaving out the fields it does not
use (protobuf skips unknown fields on the wire, so a subset reads and writes the real messages). Each
declaration names the upstream .proto it follows. The package is a private one, so nothing registers
under an upstream name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

_F = descriptor_pb2.FieldDescriptorProto
STRING, BYTES, BOOL, INT32, INT64, UINT32, ENUM, MESSAGE = (
    _F.TYPE_STRING,
    _F.TYPE_BYTES,
    _F.TYPE_BOOL,
    _F.TYPE_INT32,
    _F.TYPE_INT64,
    _F.TYPE_UINT32,
    _F.TYPE_ENUM,
    _F.TYPE_MESSAGE,
)
# (name, number, type, message or enum type name or None, repeated)
Field = tuple[str, int, int, str | None, bool]


class Schema:
    """One private .proto file of messages; `classes()` turns it into message classes."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.file = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax="proto3")

    def message(self, name: str, fields: Sequence[Field]) -> descriptor_pb2.DescriptorProto:
        """A top-level message of the file (the returned object is the file's own: nest types in it)."""
        return self._fill(self.file.message_type.add(name=name), fields)

    def map_entry(self, parent: descriptor_pb2.DescriptorProto, name: str) -> None:
        """A map<string, string> entry type nested in `parent`."""
        entry = self._fill(
            parent.nested_type.add(name=name), [("key", 1, STRING, None, False), ("value", 2, STRING, None, False)]
        )
        entry.options.map_entry = True

    def _fill(self, msg: descriptor_pb2.DescriptorProto, fields: Sequence[Field]) -> descriptor_pb2.DescriptorProto:
        for fname, number, ftype, type_name, repeated in fields:
            field = msg.field.add(
                name=fname, number=number, type=ftype, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            )
            if type_name is not None:
                field.type_name = f".{self.package}.{type_name}"
        return msg

    def classes(self, *names: str) -> list[Any]:
        pool = descriptor_pool.DescriptorPool()
        pool.Add(self.file)
        return [message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{self.package}.{n}")) for n in names]
