"""The local control plane (devenv.controlplane): real etcd, kube-apiserver and kube-controller-manager.

Proves the controllers that deletion needs run (namespaces finish terminating, dependents are collected,
every namespace gets its `default` ServiceAccount), that a webhook on loopback is called, and that every
process started is gone afterwards, however the control plane was left (block end, exception, startup
failure, SIGTERM or Ctrl-C to the CLI). Skipped where the binaries' variables are unset:
scripts/build/controlplane.sh prints them.
"""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.controlplane import ControlPlane, ControlPlaneError, binaries_from_env, missing_binaries

from .conftest import ROOT
from .processes import alive, children_of

pytestmark = pytest.mark.skipif(missing_binaries() is not None, reason=str(missing_binaries()))

Json = dict[str, Any]


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        yield cp


def _api(cp: ControlPlane, method: str, path: str, body: Json | None = None) -> tuple[int, Json]:
    request = urllib.request.Request(
        cp.server + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {cp.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=cp.ssl_context(), timeout=30) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _must(cp: ControlPlane, method: str, path: str, body: Json | None = None) -> Json:
    status, doc = _api(cp, method, path, body)
    assert 200 <= status < 300, (method, path, status, doc)
    return doc


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)


def _namespace(cp: ControlPlane, **labels: str) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    _must(cp, "POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    return name


def test_version_and_readiness(plane: ControlPlane) -> None:
    version = _must(plane, "GET", "/version")
    assert version["gitVersion"] == "v1.34.4", version  # the build's version ldflags took effect
    assert plane.kubeconfig.is_file()
    assert set(plane.pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kubectl_uses_the_kubeconfig(plane: ControlPlane) -> None:
    run = subprocess.run(
        ["kubectl", "--kubeconfig", str(plane.kubeconfig), "get", "namespace", "default", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "namespace/default"


def test_namespace_gets_default_service_account_and_is_deleted(plane: ControlPlane) -> None:
    ns = _namespace(plane)
    _eventually(
        lambda: _api(plane, "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200,
        "serviceaccount controller creates the default ServiceAccount",
    )
    _must(plane, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "content"}})
    _must(plane, "DELETE", f"/api/v1/namespaces/{ns}")
    _eventually(
        lambda: _api(plane, "GET", f"/api/v1/namespaces/{ns}")[0] == 404,
        "namespace controller empties and finalizes the Terminating namespace",
    )


def test_foreground_deletion_collects_dependents(plane: ControlPlane) -> None:
    ns = _namespace(plane)
    owner = _must(plane, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    dependent = {"metadata": {"name": "dependent", "ownerReferences": [ref]}}
    _must(plane, "POST", f"/api/v1/namespaces/{ns}/configmaps", dependent)
    _must(plane, "DELETE", f"/api/v1/namespaces/{ns}/configmaps/owner", {"propagationPolicy": "Foreground"})
    _eventually(
        lambda: _api(plane, "GET", f"/api/v1/namespaces/{ns}/configmaps/owner")[0] == 404,
        "garbage collector deletes the dependent, then the owner",
    )
    assert _api(plane, "GET", f"/api/v1/namespaces/{ns}/configmaps/dependent")[0] == 404


def test_service_account_token_secret_is_filled(plane: ControlPlane) -> None:
    ns = _namespace(plane)
    _eventually(lambda: _api(plane, "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200, "default SA")
    secret = {
        "metadata": {"name": "token", "annotations": {"kubernetes.io/service-account.name": "default"}},
        "type": "kubernetes.io/service-account-token",
    }
    _must(plane, "POST", f"/api/v1/namespaces/{ns}/secrets", secret)
    _eventually(
        lambda: "token" in _must(plane, "GET", f"/api/v1/namespaces/{ns}/secrets/token").get("data", {}),
        "serviceaccount-token controller fills the token Secret",
    )


class _DenyLabelled(http.server.BaseHTTPRequestHandler):
    """Admission webhook: denies objects labelled deny=yes."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        denied = request["object"]["metadata"].get("labels", {}).get("deny") == "yes"
        response: Json = {"uid": request["uid"], "allowed": not denied}
        if denied:
            response["status"] = {"code": 403, "message": "denied by the test webhook"}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_webhook_on_loopback_is_called(plane: ControlPlane, tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        capture_output=True,
        check=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DenyLabelled)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ns = _namespace(plane, webhook="on")
    name = f"deny-{ns}"
    try:
        webhook = {
            "name": "deny.test.invalid",
            "clientConfig": {
                "url": f"https://127.0.0.1:{server.server_address[1]}/validate",
                "caBundle": base64.b64encode(cert.read_bytes()).decode(),
            },
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}
            ],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }
        config = {"metadata": {"name": name}, "webhooks": [webhook]}
        _must(plane, "POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", config)
        answers: list[tuple[int, Json]] = []

        def denied() -> bool:  # the configuration reaches the API server's webhook informer shortly
            probe = {"metadata": {"generateName": "probe-", "labels": {"deny": "yes"}}}
            answers.append(_api(plane, "POST", f"/api/v1/namespaces/{ns}/configmaps", probe))
            return answers[-1][0] == 403

        _eventually(denied, "the webhook denies a labelled ConfigMap", timeout=30)
        assert "denied by the test webhook" in answers[-1][1]["message"]
        _must(plane, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "allowed"}})
    finally:
        _api(plane, "DELETE", f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}")
        server.shutdown()
        server.server_close()


# --- teardown ---------------------------------------------------------------------------------------------


def test_stops_everything_after_the_block() -> None:
    with ControlPlane() as cp:
        pids, workdir = cp.pids, cp.workdir
        assert all(alive(pid) for pid in pids.values())
    assert len(pids) == 3
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert not workdir.exists()


def test_stops_everything_when_the_block_raises() -> None:
    pids: dict[str, int] = {}
    with pytest.raises(RuntimeError, match="boom"), ControlPlane() as cp:
        pids = cp.pids
        raise RuntimeError("boom")
    assert len(pids) == 3
    assert not [name for name, pid in pids.items() if alive(pid)]


def test_failed_start_names_the_process_and_stops_the_others(tmp_path: Path) -> None:
    broken = tmp_path / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'unknown flag: --nonsense' >&2\nexit 3\n")
    broken.chmod(0o755)
    cp = ControlPlane(binaries={**binaries_from_env(), "kube-apiserver": broken})
    with pytest.raises(ControlPlaneError, match=r"kube-apiserver exited with code 3(.|\n)*unknown flag"):
        cp.start()
    assert set(cp.pids) == {"etcd", "kube-apiserver"}
    assert not [name for name, pid in cp.pids.items() if alive(pid)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_stops_everything_on_signal(sig: signal.Signals, tmp_path: Path) -> None:
    stderr = (tmp_path / "stderr").open("w+")
    cli = subprocess.Popen(
        [sys.executable, "-m", "devenv.controlplane"], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    try:
        assert cli.stdout is not None
        lines = [cli.stdout.readline() for _ in range(2)]  # printed once ready; EOF if it failed
        stderr.seek(0)
        assert lines[1].startswith("export KUBECONFIG="), (lines, stderr.read())
        kubeconfig = Path(lines[0].removeprefix("kubeconfig: ").strip())
        assert kubeconfig.is_file()
        children = children_of(cli.pid)
        assert sorted(children.values()) == ["etcd", "kube-apiserver", "kube-controller"], children  # comm: 15 chars
        cli.send_signal(sig)
        assert cli.wait(60) == 0
        assert not [name for pid, name in children.items() if alive(pid)]
        assert not kubeconfig.exists()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        stderr.close()
