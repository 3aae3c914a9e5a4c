"""Run the real Pulumi CLI on this program with the program served in-process.

The Pulumi CLI normally starts the `pulumi-language-python` plugin to run `__main__.py`. That plugin is
a separate Go module which the Go module proxy does not serve, so it cannot be built offline. The
Automation API's language server (part of the `pulumi` Python package) does the same job in-process:
the CLI connects to it with `--client`, and everything else (engine, providers, policy packs, state)
is the ordinary CLI. Where `pulumi-language-python` is installed, `pulumi up` works directly too.

Usage: python scripts/pulumi_inline.py <pulumi arguments...>   (run from the project directory)
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc

# Commands that run the program; the rest (stack select, config, ...) go to the CLI unchanged.
PROGRAM_COMMANDS = {"preview", "up", "update", "refresh", "destroy"}
# The engine sends whole resource graphs over this channel.
_MAX_MESSAGE = 400 * 1024 * 1024


def _program() -> None:
    from components.program import main

    main()


def run(argv: list[str]) -> int:
    pulumi = os.environ.get("PULUMI_BIN", "pulumi")
    if not argv or argv[0] not in PROGRAM_COMMANDS:
        return subprocess.call([pulumi, *argv])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", _MAX_MESSAGE), ("grpc.max_send_message_length", _MAX_MESSAGE)],
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(_program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        return subprocess.call([pulumi, *argv, f"--client=127.0.0.1:{port}", "--exec-kind", "auto.inline"])
    finally:
        server.stop(0)


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    try:
        sys.exit(run(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
