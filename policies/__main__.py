"""Builds the egress policy pack. Constructing a PolicyPack starts its server and blocks, so this
module does nothing else; the validators live in egress_policies/ and are tested directly."""

import sys
from pathlib import Path

# The rules are shared with the program (components/rules/), one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egress_policies.pack import ENFORCEMENT_LEVEL, PACK_NAME, POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name=PACK_NAME, enforcement_level=ENFORCEMENT_LEVEL, policies=POLICIES)
