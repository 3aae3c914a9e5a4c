"""A self-signed serving certificate for a webhook Service, made once and kept (secret) in the state.

A Pulumi dynamic resource: its provider runs in the engine's `pulumi-python` resource plugin, which
every Pulumi install bundles, so no extra provider plugin is needed. The certificate is created with
the openssl CLI on the machine that runs `pulumi up` and changes only when the host name does.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

VALID_DAYS = 3650


def openssl_self_signed(host: str, days: int = VALID_DAYS) -> tuple[str, str]:
    """(certificate PEM, private key PEM) for `host`, made by the openssl CLI."""
    with tempfile.TemporaryDirectory() as tmp:
        key, crt = Path(tmp) / "tls.key", Path(tmp) / "tls.crt"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days)),
                *(
                    "-subj",
                    f"/CN={host}",
                    "-addext",
                    f"subjectAltName=DNS:{host}",
                    "-keyout",
                    str(key),
                    "-out",
                    str(crt),
                ),
            ],
            check=True,
            capture_output=True,
        )
        return crt.read_text(), key.read_text()


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n.*?-----END \1-----\n?", re.S)


def is_certificate_and_key(crt: str, key: str) -> bool:
    blocks = [m.group(1) for m in _PEM_BLOCK.finditer(crt + key)]
    return "CERTIFICATE" in blocks and any(b.endswith("PRIVATE KEY") for b in blocks)


class _Provider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        crt, key = openssl_self_signed(str(props["host"]))
        return CreateResult(id_=props["host"], outs={"host": props["host"], "crt": crt, "key": key})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("host") != news.get("host")
        return DiffResult(changes=changed, replaces=["host"] if changed else [], delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # Nothing outside the state holds the certificate: what the state says is the truth.
        return ReadResult(id_=id_, outs=props)


@dataclass(frozen=True)
class WebhookCertificateArgs:
    host: str


class WebhookCertificate(Resource):
    crt: pulumi.Output[str]
    key: pulumi.Output[str]

    def __init__(self, name: str, args: WebhookCertificateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # The key never appears in clear text: both outputs are secrets in the state.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["crt", "key"]))
        super().__init__(_Provider(), name, {"host": args.host, "crt": None, "key": None}, opts)
