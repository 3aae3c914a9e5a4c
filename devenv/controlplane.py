"""Owns a throwaway local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager; no nodes)."""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import http.client
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol, Self

import yaml

from .kubeapi import KubeApi
from .ports import free_ports

log = logging.getLogger(__name__)

# Binary -> environment variable naming it (printed by scripts/build/controlplane.sh).
ENV_VARS: Mapping[str, str] = {
    "kube-apiserver": "KUBE_APISERVER_BIN",
    "kube-controller-manager": "KUBE_CONTROLLER_MANAGER_BIN",
    "etcd": "ETCD_BIN",
}
BUILD_HINT = "run `make tools` / scripts/build/controlplane.sh"
# Only what deleting objects needs: namespace finalization, foreground/background deletion of dependents,
# the `default` ServiceAccount of every namespace and the token Secrets of legacy ServiceAccount tokens.
# clusterrole-aggregation: charts ship aggregated ClusterRoles (Kyverno's), empty without it.
CONTROLLERS = "namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "admin"
STOP_GRACE_SECONDS = 15.0

_Handler = Callable[[int, FrameType | None], Any] | int | None


class ControlPlaneError(RuntimeError):
    """The control plane cannot be started (missing binary, a process exited, not ready in time)."""


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM while a control plane runs, so that `with` blocks clean up."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def missing_executable(var: str, what: str, hint: str) -> str | None:
    """Why the binary the variable `var` names cannot run (unset, or not an executable file), or None."""
    value = os.environ.get(var, "")
    if not value:
        return f"{var} is not set ({what}); {hint}"
    if not os.access(value, os.X_OK):
        return f"{var}={value} is not an executable file; {hint}"
    return None


def missing_binaries() -> str | None:
    """Why the control plane cannot start here (an unset or wrong binary variable), or None."""
    for name, var in ENV_VARS.items():
        reason = missing_executable(var, f"the {name} binary", BUILD_HINT)
        if reason is not None:
            return reason
    return None


def binaries_from_env() -> dict[str, Path]:
    reason = missing_binaries()
    if reason is not None:
        raise ControlPlaneError(reason)
    return {name: Path(os.environ[var]) for name, var in ENV_VARS.items()}


# --- child processes ---------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc: Any = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if this (forking) thread dies, even by SIGKILL,
    # the kernel kills the child, so no orphaned server survives a crashed test run.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# util-linux's setpriv sets the same parent-death signal and then execs the command, so no Python code
# runs between fork and exec: Python then starts the child without a plain fork, whose atfork handlers
# (gRPC's, once a test has used a channel in this process) abort a child now and then (SIGABRT,
# "epoll_wait error: Bad file descriptor"). The prctl above is the fallback where setpriv is missing.
_SETPRIV = shutil.which("setpriv")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self) -> str:
        return f"{self.name} exited with code {self.popen.returncode}; last lines of {self.log}:\n{self.tail()}"

    def stop(self, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds; reaps the process."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s of SIGTERM; killing it", self.name, grace)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def spawn(
    name: str, argv: Sequence[str], workdir: Path, env: Mapping[str, str] | None = None, log_path: Path | None = None
) -> Process:
    """Starts one out-of-cluster component in its own process group, its output in `log_path` (default
    `workdir/<name>.log`); it dies with the thread that started it. Every process devenv and the
    sandbox start goes through here."""
    log_path = log_path or workdir / f"{name}.log"
    env = dict(os.environ if env is None else env)
    if name == "etcd":  # etcd reads every ETCD_* variable as a flag (ETCD_BIN is ours)
        env = {key: value for key, value in env.items() if not key.startswith("ETCD_")}
    command = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else list(argv)
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,  # own process group: Ctrl-C in a terminal reaches only us; killpg stops it
            preexec_fn=None if _SETPRIV else _die_with_parent,  # a prctl call only
        )
    log.debug("started %s (pid %d): %s", name, popen.pid, shlex.join(argv))
    return Process(name, popen, log_path)


# --- signals -------------------------------------------------------------------------------------------


class _Stoppable(Protocol):
    def stop(self) -> None: ...


# Everything running that must be stopped on SIGTERM or at exit (control planes and what runs against
# them, e.g. devenv.kyverno_admission), last started first.
_active: list[_Stoppable] = []
_previous_sigterm: _Handler = None
_lock = threading.Lock()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def activate(plane: _Stoppable) -> None:
    global _previous_sigterm
    with _lock:
        if not _active and threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        _active.append(plane)


def deactivate(plane: _Stoppable) -> None:
    global _previous_sigterm
    with _lock:
        if plane in _active:
            _active.remove(plane)
        if not _active and _previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, _previous_sigterm)
            _previous_sigterm = None


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds SIGINT/SIGTERM during cleanup so a second Ctrl-C cannot leave servers behind; re-raises after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signal.SIGINT in received:
        raise KeyboardInterrupt
    if signal.SIGTERM in received:
        raise Terminated


@atexit.register
def _stop_all() -> None:
    for plane in reversed(list(_active)):
        plane.stop()


# --- readiness -----------------------------------------------------------------------------------------


def poll(
    ready: Callable[[], tuple[bool, str]], deadline: float, alive: Callable[[], None], interval: float
) -> tuple[bool, str]:
    """Asks `ready` every `interval` s until it holds or `deadline` (monotonic) passes: (held, its last
    answer). `alive` raises if what is awaited has died meanwhile."""
    while True:
        alive()
        ok, last = ready()
        if ok or time.monotonic() > deadline:
            return ok, last
        time.sleep(interval)


def http_get(url: str, *, token: str | None = None, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """(status, body) of a GET; (0, error text) when there is no HTTP answer."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as err:
        return 0, str(err)


def _insecure_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _kubeconfig(server: str, ca_pem: bytes, user: str, token: str) -> str:
    cluster = "local-controlplane"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)


# --- a group of processes started and stopped together ---------------------------------------------


class Supervised:
    """Processes started together in one temporary work directory and stopped together (process groups,
    SIGTERM then SIGKILL, last started first), however the block that started them ends: the lifecycle
    of the control plane and of devenv.ratelimit's services. `start` runs a subclass's `_start(workdir)`
    and waits with `_wait`; a process that exits meanwhile fails the start with its log's last lines."""

    what = "the processes"  # for messages: "<what> is not started"
    error: type[Exception] = ControlPlaneError
    workdir_prefix = "supervised-"
    poll_interval = 0.1
    stop_grace = STOP_GRACE_SECONDS

    def __init__(self, *, timeout: float, keep_workdir: bool) -> None:
        self.timeout = timeout
        self.keep_workdir = keep_workdir
        self._processes: list[Process] = []
        self._pids: dict[str, int] = {}
        self._workdir: Path | None = None
        self._started_at = 0.0
        self.startup_seconds = 0.0

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise self.error(f"{self.what} is not started")
        return self._workdir

    @property
    def pids(self) -> dict[str, int]:
        """Process id of every process started (also after they stopped)."""
        return dict(self._pids)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        if self._workdir is not None:
            raise self.error(f"{self.what} is already started")
        self._prepare()
        self._started_at = time.monotonic()
        self._workdir = Path(tempfile.mkdtemp(prefix=self.workdir_prefix))
        activate(self)
        try:
            self._start(self._workdir)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - self._started_at
        return self

    def stop(self) -> None:
        """Stops every process started (last started first); idempotent."""
        with signals_deferred():
            ran = bool(self._processes)
            while self._processes:
                self._processes.pop().stop(self.stop_grace)
            if ran:
                self._stopped()
            deactivate(self)
            if self._workdir is not None:
                if self.keep_workdir:
                    log.info("kept %s's work dir %s", self.what, self._workdir)
                else:
                    shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def check(self) -> None:
        """Raises `error` if one of the processes has exited."""
        for proc in self._processes:
            if proc.popen.poll() is not None:
                raise self.error(proc.describe_exit())

    def _prepare(self) -> None:
        """Checks before anything starts (the binaries are there)."""

    def _start(self, workdir: Path) -> None:
        raise NotImplementedError

    def _stopped(self) -> None:
        """After the processes stopped: undo what only they served."""

    def _spawn(self, name: str, argv: Sequence[str], workdir: Path, env: Mapping[str, str] | None = None) -> Process:
        proc = spawn(name, argv, workdir, env)
        self._processes.append(proc)
        self._pids[name] = proc.popen.pid
        return proc

    def _wait(self, what: str, ready: Callable[[], tuple[bool, str]]) -> None:
        ok, last = poll(ready, self._started_at + self.timeout, self.check, self.poll_interval)
        if not ok:
            proc = self._processes[-1]
            raise self.error(
                f"{what} not ready within {self.timeout:.0f} s (last answer: {last.strip()[:300]}); "
                f"last lines of {proc.log}:\n{proc.tail()}"
            )


# --- the control plane ---------------------------------------------------------------------------------


class ControlPlane(Supervised):
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports, in a temporary directory.

    `with ControlPlane() as cp:` starts all three, waits until the API server's /readyz answers ok and
    stops them again (process groups, SIGTERM then SIGKILL) when the block ends, however it ends.
    The admin user (`cp.token`, group system:masters) is written to `cp.kubeconfig`. The processes die with
    the thread that started them (PR_SET_PDEATHSIG), so start it from one that outlives it (normally the main one).
    """

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        keep_workdir: bool = False,
        binaries: Mapping[str, Path] | None = None,
    ) -> None:
        super().__init__(timeout=timeout, keep_workdir=keep_workdir)
        self._binaries = dict(binaries) if binaries is not None else None
        self._port = 0
        self._token = ""

    what = "the control plane"
    workdir_prefix = "controlplane-"

    # -- properties ---------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (server, CA data of the API server's self-signed certificate, token)."""
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def token(self) -> str:
        return self._token

    @property
    def ca_file(self) -> Path:
        """PEM of the API server's serving certificate followed by the CA that signed it."""
        return self.workdir / "apiserver-certs" / "apiserver.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def api(self) -> KubeApi:
        """Admin access to the API server."""
        return KubeApi(self.server, self.token, self.ssl_context())

    def service_account_kubeconfig(self, namespace: str, name: str, hours: int = 24) -> Path:
        """A kubeconfig for the ServiceAccount `namespace/name` (which must exist), as a pod of it would
        authenticate: a token from the TokenRequest API, bound to the API server's audience. Nothing
        else: what it may do is what RBAC in the API server grants that ServiceAccount."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": hours * 3600},
        }
        status, body = self.api.request("POST", f"api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", request)
        if status != 201:
            raise ControlPlaneError(f"no token for ServiceAccount {namespace}/{name}: HTTP {status}: {body}")
        user = f"system:serviceaccount:{namespace}:{name}"
        path = self.workdir / f"kubeconfig-{namespace}-{name}"
        path.write_text(_kubeconfig(self.server, self.ca_file.read_bytes(), user, body["status"]["token"]))
        path.chmod(0o600)
        return path

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> Self:
        super().start()
        log.info("control plane ready at %s in %.1f s (work dir %s)", self.server, self.startup_seconds, self._workdir)
        return self

    def _prepare(self) -> None:
        binaries = self._binaries or binaries_from_env()
        for name in ENV_VARS:
            if name not in binaries:
                raise ControlPlaneError(f"no {name} binary given; {BUILD_HINT}")
        self._binaries = dict(binaries)

    # -- internals ----------------------------------------------------------------------------------
    def _start(self, workdir: Path) -> None:
        assert self._binaries is not None
        binaries = self._binaries
        etcd_port, peer_port, self._port, kcm_port = free_ports(4)
        self._token = secrets.token_hex(24)
        kcm_token = secrets.token_hex(24)

        sa_key = workdir / "sa.key"
        openssl = subprocess.run(
            ["openssl", "genrsa", "-out", str(sa_key), "2048"], capture_output=True, text=True, check=False
        )
        if openssl.returncode != 0:
            raise ControlPlaneError(f"`openssl genrsa` failed: {openssl.stderr.strip()}")
        tokens = workdir / "tokens.csv"
        # token,user,uid,"groups": both users are cluster admins.
        tokens.write_text(
            f'{self._token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n'
            f'{kcm_token},system:kube-controller-manager,system:kube-controller-manager,"system:masters"\n'
        )
        for path in (sa_key, tokens):
            path.chmod(0o600)

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(binaries["etcd"]),
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",
            ],
            workdir,
        )

        def etcd_ready() -> tuple[bool, str]:
            status, body = http_get(f"{etcd_url}/health")
            with contextlib.suppress(ValueError, AttributeError):
                return status == 200 and json.loads(body).get("health") == "true", body
            return False, body

        self._wait("etcd", etcd_ready)

        cert_dir = workdir / "apiserver-certs"
        self._spawn(
            "kube-apiserver",
            [
                str(binaries["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self._port}",
                "--bind-address=127.0.0.1",
                # Without it the server looks for a default route (none offline). No pod can reach a loopback
                # address, so no Endpoints for the `kubernetes` Service (they would be invalid).
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={cert_dir}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                f"--token-auth-file={tokens}",
            ],
            workdir,
        )

        def apiserver_ready() -> tuple[bool, str]:
            if not self.ca_file.is_file():  # written before the server listens
                return False, f"{self.ca_file} not written yet"
            status, body = http_get(f"{self.server}/readyz", token=self._token, context=self.ssl_context())
            return status == 200 and body.strip() == "ok", body

        self._wait("kube-apiserver", apiserver_ready)

        ca_pem = self.ca_file.read_bytes()
        self.kubeconfig.write_text(_kubeconfig(self.server, ca_pem, ADMIN_USER, self._token))
        kcm_kubeconfig = workdir / "kube-controller-manager.kubeconfig"
        kcm_kubeconfig.write_text(_kubeconfig(self.server, ca_pem, "system:kube-controller-manager", kcm_token))
        for path in (self.kubeconfig, kcm_kubeconfig):
            path.chmod(0o600)

        self._spawn(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--controllers={CONTROLLERS}",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self.ca_file}",
                f"--secure-port={kcm_port}",
                "--bind-address=127.0.0.1",
                f"--cert-dir={workdir / 'kube-controller-manager-certs'}",
            ],
            workdir,
        )
        insecure = _insecure_context()  # its own throwaway self-signed certificate; only /healthz is asked

        def kcm_ready() -> tuple[bool, str]:
            status, body = http_get(f"https://127.0.0.1:{kcm_port}/healthz", context=insecure)
            return status == 200 and body.strip() == "ok", body

        self._wait("kube-controller-manager", kcm_ready)


# --- CLI -----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.controlplane",
        description="Start a local Kubernetes control plane (no nodes) until Ctrl-C or SIGTERM. "
        f"Binaries come from {', '.join(ENV_VARS.values())} ({BUILD_HINT}).",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data) after stopping")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every process started")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="controlplane: %(message)s", stream=sys.stderr
    )
    # Ctrl-C stops it even where SIGINT was inherited ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    plane = ControlPlane(timeout=args.timeout, keep_workdir=args.keep)
    try:
        with plane:
            print(f"kubeconfig: {plane.kubeconfig}")
            print(f"export KUBECONFIG={shlex.quote(str(plane.kubeconfig))}", flush=True)
            log.info("logs in %s; Ctrl-C or SIGTERM stops it", plane.workdir)
            while True:
                plane.check()
                time.sleep(0.5)
    except (KeyboardInterrupt, Terminated):
        log.info("stopped")
        return 0
    except ControlPlaneError as err:
        log.error("%s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
