#!/usr/bin/env bash
# Prints a JSON list of the stacks whose config changed between BASE and HEAD. A change to the
# program or the policy pack touches every stack. Usage: changed-stacks.sh BASE HEAD
set -euo pipefail
base=$1 head=$2
changed=$(git diff --name-only "$base" "$head")
all=$(ls Pulumi.*.yaml | sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p' | grep -v -- '-render$' || true)
if grep -qE '^(components/|policies/|__main__\.py|Pulumi\.yaml|requirements)' <<<"$changed"; then
  stacks=$all
else
  stacks=$(sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p' <<<"$changed" | grep -Fx -f <(echo "$all") || true)
fi
# Team stacks read the platform stack (dev): list the platform first so merges apply it first.
printf '%s\n' $stacks | sort | awk 'NF' | awk '$0=="dev"{print; next} {rest=rest $0 "\n"} END{printf "%s", rest}' \
  | python3 -c 'import json,sys; print(json.dumps([l.strip() for l in sys.stdin if l.strip()]))'
