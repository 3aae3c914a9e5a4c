"""Shared test settings: where the upstream CRD schemas are, and the example stack files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# One setting: EGRESS_CRDS_DIR, defaulting to the shared CRD folder beside the checkout.
CRDS_DIR = Path(os.environ.get("EGRESS_CRDS_DIR", ROOT.parent / "shared" / "crds"))
STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))
# A fixed day for everything that depends on approval expiry.
TODAY = dt.date(2026, 11, 26)


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    if not CRDS_DIR.is_dir():
        pytest.skip(f"CRD schemas not found at {CRDS_DIR} (set EGRESS_CRDS_DIR; see scripts/fetch_crds.py)")
    return CRDS_DIR
