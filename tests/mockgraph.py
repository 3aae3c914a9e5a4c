"""Pulumi mocks that record the resource graph: type, parent, dependencies and inputs by name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: [{name: prod-east, context: {}}]\n"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"


@dataclass
class Node:
    type: str
    name: str
    urn: str
    parent: str
    deps: set[str]
    inputs: dict[str, Any]
    custom: bool


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)  # by name

    def by_urn(self, urn: str) -> Node:
        return next(n for n in self.nodes.values() if n.urn == urn)

    def deps(self, name: str) -> set[str]:
        return {self.by_urn(u).name for u in self.nodes[name].deps}

    def parent(self, name: str) -> str:
        """Name of the parent ('' for the stack itself)."""
        p = self.nodes[name].parent
        return "" if not p or "::pulumi:pulumi:Stack::" in p else self.by_urn(p).name

    def of_type(self, typ: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.type == typ]


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks, graph: Graph) -> None:
        super().__init__(mocks)
        self.graph = graph

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        result = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            from pulumi.runtime import rpc

            self.graph.nodes[request.name] = Node(
                type=request.type,
                name=request.name,
                urn=result.urn,
                parent=request.parent,
                deps=set(request.dependencies),
                inputs=rpc.deserialize_properties(request.object),
                custom=request.custom,
            )
        return result


class EgressMocks(pulumi.runtime.Mocks):
    """Plausible outputs for the few resources whose outputs the program reads."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "command:local:Command":
            outputs["stdout"] = KUBECONFIG
        if args.typ == "pulumi-python:dynamic:Resource":  # the webhook certificate
            outputs.update(crt=CERTIFICATE, key=PRIVATE_KEY)
        if args.typ == "docker:index/container:Container":
            outputs["networkDatas"] = [{"networkName": "kind", "ipAddress": "172.18.0.9"}]
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = "sha256:0123"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def install(graph: Graph, stack: str = "stack") -> None:
    mocks = EgressMocks()
    pulumi.runtime.set_mocks(
        mocks, project="project", stack=stack, preview=False, monitor=RecordingMonitor(mocks, graph)
    )


def resources(root: object) -> Iterator[pulumi.Resource]:
    """Every pulumi.Resource reachable through public attributes (components keep their children)."""
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, pulumi.Resource):
            yield obj
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and (isinstance(obj, pulumi.Resource) or hasattr(obj, "__dataclass_fields__")):
            stack.extend(v for k, v in vars(obj).items() if not k.startswith("_"))
