"""A throwaway PostgreSQL on loopback: the shared state backend (`postgres://`) of Pulumi's DIY backend
that many team stacks update at once. Debian's server binaries (scripts/bootstrap.sh installs the
`postgresql` package where it is missing); the server runs as the `postgres` user, as it refuses root,
with trust authentication on 127.0.0.1 only and no fsync (the data is thrown away with the directory)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .controlplane import ControlPlaneError, Process, spawn
from .ports import free_ports

USER = "postgres"
DATABASE = "pulumi"
# Pulumi's postgres bucket creates its table on every start (CREATE TABLE IF NOT EXISTS); many CLIs
# starting at once on an empty database race on it (duplicate key in pg_type), so it is made first,
# with the same statement (pkg/backend/diy/postgres/schema.sql of pulumi v3.260.0).
TABLE = "pulumi_state"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, data JSON NOT NULL, "
    "updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()); "
    f"CREATE INDEX IF NOT EXISTS {TABLE}_key_prefix_idx ON {TABLE} (key text_pattern_ops);"
)


def bin_dir() -> Path | None:
    """POSTGRES_BIN_DIR (from scripts/bootstrap.sh), else the newest Debian server's."""
    env = os.environ.get("POSTGRES_BIN_DIR")
    candidates = [Path(env)] if env else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    needed = ("postgres", "initdb", "psql", "pg_isready")
    return next((d for d in candidates if all((d / n).is_file() for n in needed)), None)


def missing() -> str | None:
    """Why no server can be started here, or None."""
    if bin_dir() is None:
        return "needs PostgreSQL's server (Debian package postgresql; scripts/bootstrap.sh installs it)"
    if shutil.which("runuser") is None:
        return "needs runuser (util-linux)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"needs the {USER} user (Debian's postgresql package creates it)"
    return None


def _run(what: str, argv: list[str], timeout: float) -> str:
    """A client program's output; its error, named, if it fails."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise ControlPlaneError(f"{what} failed: {out.stderr.strip()[-2000:]}")
    return out.stdout


@dataclass
class Postgres:
    port: int
    process: Process
    binaries: Path

    @property
    def url(self) -> str:
        """Pulumi's backend URL (lib/pq requires TLS unless told otherwise; loopback has none)."""
        return f"postgres://{USER}@127.0.0.1:{self.port}/{DATABASE}?sslmode=disable"

    def psql(self, sql: str, database: str = DATABASE) -> str:
        argv = [str(self.binaries / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database]
        return _run("psql", [*argv, "-Atc", sql], timeout=30)


@contextlib.contextmanager
def postgres(max_connections: int = 300) -> Iterator[Postgres]:
    """A server on a free loopback port with the `pulumi` database and Pulumi's table; stopped (and its
    directory removed) on exit, whatever happened. Each Pulumi CLI opens up to 2 x GOMAXPROCS
    connections, hence the headroom over the default 100."""
    reason = missing()
    if reason:
        raise ControlPlaneError(reason)
    binaries = bin_dir()
    assert binaries is not None
    uid, gid = pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid
    work = Path(tempfile.mkdtemp(prefix="egress-postgres-"))
    proc = None
    try:
        os.chown(work, uid, gid)
        (port,) = free_ports(1)
        data = work / "data"
        initdb = [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", USER]
        _run("initdb", ["runuser", "-u", USER, "--", *initdb], timeout=120)
        argv = ["runuser", "-u", USER, "--", str(binaries / "postgres"), "-D", str(data), "-k", str(work)]
        argv += ["-p", str(port), "-h", "127.0.0.1", "-c", f"max_connections={max_connections}"]
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        proc = spawn("postgres", argv, work, log_path=work / "postgres.log")
        server = Postgres(port, proc, binaries)
        deadline = time.monotonic() + 60
        while subprocess.run(
            [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(proc.describe_exit())
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"postgres not ready within 60 s:\n{proc.tail()}")
            time.sleep(0.2)
        server.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        server.psql(_SCHEMA)
        yield server
    finally:
        if proc is not None:
            proc.stop(grace=15)
        shutil.rmtree(work, ignore_errors=True)
