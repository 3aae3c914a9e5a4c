"""Mesh identities for the sandbox, made with openssl at start: a CA, the gateway's serving
certificate, and one workload certificate per caller with its SPIFFE id as the URI SAN (as Istio
issues them), so the gateway sees the caller's identity the way it does in the mesh.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TRUST_DOMAIN = "cluster.local"  # Istio's default trust domain
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def spiffe_id(namespace: str, service_account: str = "default", trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is needed to make the sandbox's certificates")
    out = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {out.stderr.strip()}")


class Pki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = KeyPair(self.dir / "ca.crt", self.dir / "ca.key")
        self._serial = 1
        _openssl(
            "req", "-x509", *_KEY, "-keyout", str(self.ca.key), "-out", str(self.ca.cert), "-days", "2",
            "-subj", "/O=egress-sandbox/CN=sandbox mesh CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )  # fmt: skip

    def _issue(self, name: str, usage: str, san: str) -> KeyPair:
        pair = KeyPair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        csr, ext = self.dir / f"{name}.csr", self.dir / f"{name}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n"
            f"subjectAltName={san}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        _openssl("req", "-new", *_KEY, "-keyout", str(pair.key), "-out", str(csr), "-subj", "/O=egress-sandbox")
        self._serial += 1
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca.cert), "-CAkey", str(self.ca.key),
            "-set_serial", str(self._serial), "-days", "2", "-extfile", str(ext), "-out", str(pair.cert),
        )  # fmt: skip
        return pair

    def server(self, name: str) -> KeyPair:
        """The gateway's certificate, for 127.0.0.1 (where the sandbox's clients dial it)."""
        return self._issue(name, "serverAuth", "IP:127.0.0.1,DNS:localhost")

    def workload(self, name: str, spiffe: str) -> KeyPair:
        """A workload's certificate: its SPIFFE id as the only SAN, no subject name, as Istio issues it."""
        return self._issue(name, "clientAuth,serverAuth", f"URI:{spiffe}")
