"""The Ollama container that stands in for an external model API, on the docker network kind uses."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

OLLAMA_PORT = 11434
KIND_NETWORK = "kind"  # kind attaches its nodes to this docker network


@dataclass(frozen=True)
class OllamaArgs:
    image: str
    name: str = "egress-ollama"


class OllamaContainer(pulumi.ComponentResource):
    """Outputs `address`: the container's IP on the kind network (a STATIC ServiceEntry endpoint).

    `host.docker.internal` does not resolve from kind on Linux, hence the address.
    """

    def __init__(self, name: str, args: OllamaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("egress:index:OllamaContainer", name, {}, opts)
        import pulumi_docker as docker  # only stacks with Ollama need the docker provider

        child = pulumi.ResourceOptions(parent=self)
        image = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True, opts=child)
        volume = docker.Volume(f"{name}-models", name=f"{args.name}-models", opts=child)
        self.container = docker.Container(
            f"{name}-container",
            name=args.name,
            image=image.image_id,
            envs=[f"OLLAMA_HOST=0.0.0.0:{OLLAMA_PORT}"],
            # The cluster reaches it on the kind network; no host port (it would clash with an Ollama
            # of the user's own on 11434, and nothing on the host needs it).
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=KIND_NETWORK)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path="/root/.ollama")],
            restart="unless-stopped",
            opts=child,
        )
        self.address: pulumi.Output[str] = self.container.network_datas.apply(_kind_address)
        self.container_name = args.name
        self.register_outputs({"address": self.address, "image": args.image, "containerName": args.name})


def _kind_address(networks: object) -> str:
    for n in networks or []:  # type: ignore[attr-defined]
        if n.network_name == KIND_NETWORK and n.ip_address:
            return str(n.ip_address)
    raise ValueError(f"the Ollama container has no address on the '{KIND_NETWORK}' docker network")
