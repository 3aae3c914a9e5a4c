"""`python -m components.audit [--kubeconfig FILE]`: every team object whose approval has ended or
that no approval covers, from the cluster of the current kubectl context (platform access: it reads
every team namespace and the registry). One line per object and host; exit 1 if there is any, 0 if
none, 2 if the cluster cannot be read."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys

from . import REGISTRY, RESOURCES, audit


def _kubectl(kubeconfig: str | None, *args: str) -> dict:  # type: ignore[type-arg]
    cmd = ["kubectl", *(["--kubeconfig", kubeconfig] if kubeconfig else []), *args, "-o", "json"]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if got.returncode != 0:
        raise RuntimeError(got.stderr.strip() or f"{' '.join(cmd)} failed")
    return json.loads(got.stdout)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="the platform's kubeconfig (default: kubectl's)")
    args = parser.parse_args(argv)
    try:
        registry = _kubectl(args.kubeconfig, "get", "configmap", REGISTRY[1], "-n", REGISTRY[0])
        objects = _kubectl(args.kubeconfig, "get", RESOURCES, "--all-namespaces")["items"]
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        print(f"error: audit: cannot read the cluster: {exc}", file=sys.stderr)
        return 2
    findings = audit(registry.get("data") or {}, objects, dt.datetime.now(dt.UTC).date())
    for f in findings:
        print(f.line())
    print(f"audit: {len(findings)} object(s) no approval in force covers", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
