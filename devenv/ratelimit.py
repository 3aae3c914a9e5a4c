"""The Envoy rate limit service (github.com/envoyproxy/ratelimit) and its Redis, on loopback, for the tests.

`with RateLimitService(config) as rls:` starts a throwaway redis-server (no persistence, loopback only, a
free port, its own directory: never the system's service), waits until it answers PING, then starts the
rate limit service against it with `config` (one domain's configuration, e.g.
sandbox.global_budget.limiter_config(...)) as its only file, and waits until its health check passes with
that configuration loaded and its gRPC port accepts connections. Redis goes first because the service's
Redis driver panics when Redis is not there. Both are stopped (process groups, SIGTERM then SIGKILL, last
started first) when the block ends, however it ends: on failure, SIGTERM and at exit, as
devenv/controlplane.py stops its processes; they also die with the thread that started them.

Binaries: REDIS_SERVER_BIN (Debian's redis-server) and RATELIMIT_BIN (built from the pinned module by
scripts/bootstrap.sh). The service reads its settings from the environment (src/settings/settings.go):
configuration files under RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY, Redis over TCP, no
statsd, every listener on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import yaml

from .controlplane import ControlPlaneError, Supervised, http_get, missing_executable
from .ports import free_ports

log = logging.getLogger(__name__)

REDIS_ENV_VAR = "REDIS_SERVER_BIN"
RATELIMIT_ENV_VAR = "RATELIMIT_BIN"
BUILD_HINT = "run `make tools` / scripts/bootstrap.sh"
STOP_GRACE_SECONDS = 10.0
RUNTIME_SUBDIRECTORY = "ratelimit"
APP_DIRECTORY = "config"  # RUNTIME_APPDIRECTORY's default, set anyway so the layout is explicit here


# What the service logs when a configuration file does not load (src/service/ratelimit.go
# SetConfig); it keeps running without that configuration.
LOAD_ERROR = "Error loading new configuration"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class RateLimitError(ControlPlaneError):
    """Redis or the rate limit service cannot be started (missing binary, a process exited, not ready)."""


def missing_redis() -> str | None:
    """Why no redis-server can be started here, or None."""
    return missing_executable(REDIS_ENV_VAR, "Debian's redis-server", BUILD_HINT)


def missing_ratelimit() -> str | None:
    """Why the rate limit service cannot be started here, or None."""
    return missing_executable(RATELIMIT_ENV_VAR, "the envoyproxy/ratelimit service", BUILD_HINT)


def missing_binaries() -> str | None:
    return missing_redis() or missing_ratelimit()


# --- Redis, as far as the tests need it -------------------------------------------------------------------


def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(stream: Any) -> Any:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed by redis")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RateLimitError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise RateLimitError(f"redis: unexpected reply {line[:40]!r}")


def redis_command(port: int, *args: str, timeout: float = 2.0) -> Any:
    """One command to the Redis on 127.0.0.1:`port` (RESP over a fresh connection): its decoded reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_encode(*args))
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


# --- the pair ------------------------------------------------------------------------------------------


class RateLimitService(Supervised):
    """redis-server + the Envoy rate limit service with one domain's configuration, on free loopback ports."""

    what = "the rate limit service"
    error = RateLimitError
    workdir_prefix = "ratelimit-"
    poll_interval = 0.05

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        timeout: float = 30.0,
        log_level: str = "info",
        keep_workdir: bool = False,
        redis_bin: Path | None = None,
        ratelimit_bin: Path | None = None,
    ) -> None:
        super().__init__(timeout=timeout, keep_workdir=keep_workdir)
        self.config = dict(config)
        self.log_level = log_level
        self._redis_bin = redis_bin
        self._ratelimit_bin = ratelimit_bin
        self._ports: dict[str, int] = {}

    # -- properties ---------------------------------------------------------------------------------

    @property
    def grpc_port(self) -> int:
        """Where Envoy's rate limit filter calls (envoy.service.ratelimit.v3.RateLimitService, HTTP/2)."""
        return self._port("grpc")

    @property
    def http_port(self) -> int:
        """/healthcheck and /json (a JSON form of the same ShouldRateLimit call)."""
        return self._port("http")

    @property
    def debug_port(self) -> int:
        """/rlconfig: the configuration the service has loaded."""
        return self._port("debug")

    @property
    def redis_port(self) -> int:
        return self._port("redis")

    @property
    def config_file(self) -> Path:
        return self.workdir / "runtime" / RUNTIME_SUBDIRECTORY / APP_DIRECTORY / "egress.yaml"

    def _port(self, name: str) -> int:
        if name not in self._ports:
            raise RateLimitError("the rate limit service is not started")
        return self._ports[name]

    def redis(self, *args: str) -> Any:
        """A command to this instance's Redis (e.g. `KEYS *`, `GET <key>`), to see the counters."""
        return redis_command(self.redis_port, *args)

    def loaded_config(self) -> str:
        """The service's dump of what it loaded (one line per limit), or the error text."""
        return http_get(f"http://127.0.0.1:{self.debug_port}/rlconfig")[1]

    def tail(self, name: str = "ratelimit", lines: int = 25) -> str:
        proc = next((p for p in self._processes if p.name == name), None)
        return proc.tail(lines) if proc is not None else "(not running)"

    # -- lifecycle ----------------------------------------------------------------------------------
    def _binaries(self) -> tuple[Path, Path]:
        if self._redis_bin is None:
            reason = missing_redis()
            if reason is not None:
                raise RateLimitError(reason)
        if self._ratelimit_bin is None:
            reason = missing_ratelimit()
            if reason is not None:
                raise RateLimitError(reason)
        return (
            self._redis_bin or Path(os.environ[REDIS_ENV_VAR]),
            self._ratelimit_bin or Path(os.environ[RATELIMIT_ENV_VAR]),
        )

    def start(self) -> Self:
        super().start()
        log.info("rate limit service ready on gRPC port %d in %.1f s", self.grpc_port, self.startup_seconds)
        return self

    def stop(self) -> None:
        """Stops the service, then Redis; idempotent."""
        super().stop()
        self._ports = {}

    def _prepare(self) -> None:
        self._redis_bin, self._ratelimit_bin = self._binaries()

    # -- internals ----------------------------------------------------------------------------------
    def _start(self, workdir: Path) -> None:
        redis_bin, ratelimit_bin = self._redis_bin, self._ratelimit_bin
        assert redis_bin is not None and ratelimit_bin is not None  # _prepare resolved them
        redis_port, http_port, grpc_port, debug_port = free_ports(4)
        self._ports = {"redis": redis_port, "http": http_port, "grpc": grpc_port, "debug": debug_port}

        redis_dir = workdir / "redis"
        redis_dir.mkdir()
        # No persistence and no config file: a counter store that lives and dies with the test.
        self._spawn(
            "redis-server",
            [
                str(redis_bin),
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
                "--daemonize",
                "no",
            ],
            workdir,
        )

        def redis_ready() -> tuple[bool, str]:
            try:
                answer = redis_command(redis_port, "PING", timeout=1.0)
            except (OSError, RateLimitError) as err:
                return False, str(err)
            return answer == "PONG", str(answer)

        self._wait("redis-server", redis_ready)

        self.config_file.parent.mkdir(parents=True)
        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        domain = str(self.config.get("domain", ""))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOST": "127.0.0.1",
            "PORT": str(http_port),
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(grpc_port),
            "DEBUG_HOST": "127.0.0.1",
            "DEBUG_PORT": str(debug_port),
            "REDIS_SOCKET_TYPE": "tcp",
            "REDIS_URL": f"127.0.0.1:{redis_port}",
            "USE_STATSD": "false",
            "RUNTIME_ROOT": str(workdir / "runtime"),
            "RUNTIME_SUBDIRECTORY": RUNTIME_SUBDIRECTORY,
            "RUNTIME_APPDIRECTORY": APP_DIRECTORY,
            # Watch the configuration directory itself (its default watches the root for a symlink swap).
            "RUNTIME_WATCH_ROOT": "false",
            # Healthy only once a configuration is loaded: a service without one answers OK to everything.
            "HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED": "true",
            "LOG_LEVEL": self.log_level,
        }
        self._spawn("ratelimit", [str(ratelimit_bin)], workdir, env)
        service_log = self._processes[-1].log

        def service_ready() -> tuple[bool, str]:
            # A file it cannot load leaves it running and unhealthy for good: say why at once.
            refused = [line for line in _read(service_log).splitlines() if LOAD_ERROR in line]
            if refused:
                raise RateLimitError(f"the rate limit service refused {self.config_file.name}: {refused[0]}")
            status, body = http_get(f"http://127.0.0.1:{http_port}/healthcheck")
            if status != 200:
                return False, f"/healthcheck: {status} {body}"
            loaded = self.loaded_config()
            if f"{domain}." not in loaded:
                return False, f"/rlconfig: {loaded}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", grpc_port), timeout=1.0):
                return True, "ok"
            return False, f"gRPC port {grpc_port} not listening"

        self._wait("the rate limit service", service_ready)
