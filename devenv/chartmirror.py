"""A Helm chart repository on loopback, serving the pinned upstream charts and the Gateway API bundle.

Stands in for the mirror a regulated platform installs from (`egress:platform.sources`). The charts
come unpacked from a folder (../shared/charts, see its SOURCES.md); each is packaged the way
`helm package` does (a gzipped tar whose top folder is the chart's name) and listed in an
`index.yaml` with its digest. The Gateway API `standard-install.yaml` is the pinned CRD files joined
into one multi-document file, as the upstream release builds it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import http.server
import io
import tarfile
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from components.settings import versions

GATEWAY_API_PATH = f"gateway-api/{versions.GATEWAY_API_VERSION}/standard-install.yaml"
# A fixed mtime makes the packages (and so their digests) the same on every run.
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


def package(chart_dir: Path, out_dir: Path) -> tuple[dict[str, Any], Path]:
    """(Chart.yaml, path of `<name>-<version>.tgz`) for one unpacked chart."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    out = out_dir / f"{meta['name']}-{meta['version']}.tgz"

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = _EPOCH, 0, 0, "", ""
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(chart_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{meta['name']}/{path.relative_to(chart_dir)}", filter=normalise)
    out.write_bytes(buf.getvalue())
    return meta, out


def build_repository(charts_dir: Path, crds_dir: Path, out_dir: Path) -> None:
    """Package every chart under `charts_dir` into `out_dir`, with index.yaml and the Gateway API bundle."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for chart_yaml in sorted(charts_dir.glob("*/Chart.yaml")):
        meta, tgz = package(chart_yaml.parent, out_dir)
        entry = {**meta, "urls": [tgz.name], "digest": hashlib.sha256(tgz.read_bytes()).hexdigest()}
        entry["created"] = dt.datetime.fromtimestamp(_EPOCH, dt.UTC).isoformat()
        entries.setdefault(meta["name"], []).append(entry)
    index = {"apiVersion": "v1", "entries": entries, "generated": dt.datetime.fromtimestamp(_EPOCH, dt.UTC).isoformat()}
    (out_dir / "index.yaml").write_text(yaml.safe_dump(index, sort_keys=True))
    crd_files = sorted((crds_dir / f"gateway-api/{versions.GATEWAY_API_VERSION}/standard").glob("*.yaml"))
    bundle = out_dir / GATEWAY_API_PATH
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_text("---\n".join(f.read_text() for f in crd_files))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ChartMirror:
    """Serves the repository on 127.0.0.1 (a free port) from a temporary folder, until closed."""

    def __init__(self, charts_dir: Path, crds_dir: Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="egress-charts-")
        root = Path(self._tmp.name)
        build_repository(charts_dir, crds_dir, root)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.gateway_api_manifest = f"{self.url}/{GATEWAY_API_PATH}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._tmp.cleanup()

    def __enter__(self) -> ChartMirror:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
