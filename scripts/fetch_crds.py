"""Fetch the pinned upstream CRD schemas the tests validate against, checking each sha256.

For machines without the shared CRD folder: `python scripts/fetch_crds.py DIR`, then run the
tests with EGRESS_CRDS_DIR=DIR. scripts/crds.json lists each file's upstream URL (at the pinned
commit) and checksum; a file whose checksum differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from pathlib import Path

MANIFEST = Path(__file__).with_name("crds.json")


def fetch(dest: Path) -> int:
    for entry in json.loads(MANIFEST.read_text()):
        target = dest / entry["path"]
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == entry["sha256"]:
            continue
        with urllib.request.urlopen(entry["url"], timeout=60) as response:
            body = response.read()
        digest = hashlib.sha256(body).hexdigest()
        if digest != entry["sha256"]:
            print(f"error: {entry['url']}: sha256 {digest} != pinned {entry['sha256']}", file=sys.stderr)
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python scripts/fetch_crds.py DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(fetch(Path(sys.argv[1])))
