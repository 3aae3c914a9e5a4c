#!/usr/bin/env bash
# Prints a JSON list of the stacks whose config changed between BASE and HEAD, in deploy order:
# dev, then staging, then prod; in each environment its platform stack first (team stacks read it).
# A change to the program or the policy pack touches every stack. With ENV, only that environment's
# stacks (dev: `dev` and `team-<name>`; staging: `staging` and `team-<name>-staging`; prod likewise).
# Usage: changed-stacks.sh BASE HEAD [ENV]
set -euo pipefail
base=$1 head=$2 only=${3:-}
changed=$(git diff --name-only "$base" "$head")
all=$(ls Pulumi.*.yaml | sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p' | grep -v -- '-render$' || true)
if grep -qE '^(components/|policies/|__main__\.py|Pulumi\.yaml|requirements)' <<<"$changed"; then
  stacks=$all
else
  stacks=$(sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p' <<<"$changed" | grep -Fx -f <(echo "$all") || true)
fi
printf '%s\n' $stacks | ONLY="$only" python3 -c '
import json, os, sys
ENVS = ("dev", "staging", "prod")
def env(stack):
    return next((e for e in ENVS[1:] if stack == e or stack.endswith("-" + e)), "dev")
stacks = [line.strip() for line in sys.stdin if line.strip()]
only = os.environ["ONLY"]
order = sorted(stacks, key=lambda s: (ENVS.index(env(s)), s not in ENVS, s))
print(json.dumps([s for s in order if not only or env(s) == only]))
'
