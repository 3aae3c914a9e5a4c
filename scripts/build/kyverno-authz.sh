#!/usr/bin/env bash
# Builds the Kyverno authorization server (kyverno-authz) from its published Go module, once per
# module version and stand-in version, into the tool cache; prints `export KYVERNO_AUTHZ_BIN='...'`.
#
#   eval "$(scripts/build/kyverno-authz.sh)"
#
# The module proxy does not serve the v0.4.0 tag; it serves the commit Kyverno v1.19.0 requires
# (pseudo-version below). Two of that commit's requirements are refused by the proxy:
#   - github.com/hairyhenderson/go-fsimpl: replaced by our own stand-in, scripts/build/go-fsimpl
#     (file:// sources only; git sources return an error);
#   - github.com/kyverno/sdk and github.com/kyverno/api at the versions the server requires: the
#     wrapper requires the versions github.com/kyverno/kyverno v1.19.0 requires instead (PINS), the
#     set Kyverno's own release builds this commit's packages with.
# The build happens in a throwaway wrapper module under the cache, never in the checkout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${EGRESS_TOOLS_CACHE:-$HOME/.cache/egress-tools}
MODULE=github.com/kyverno/kyverno-authz
VERSION=v0.4.1-0.20260701230957-9101a3ffd44f # the commit github.com/kyverno/kyverno v1.19.0 requires
PINS=( # as github.com/kyverno/kyverno v1.19.0 requires them
  github.com/kyverno/sdk@v0.0.0-20260703121625-e0dc6fb8661a
  github.com/kyverno/api@v0.0.1-alpha.3.0.20260723090831-fb2785727f98
)
FSIMPL_MODULE=github.com/hairyhenderson/go-fsimpl
FSIMPL_DIR=$ROOT/scripts/build/go-fsimpl

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

[ -f "$FSIMPL_DIR/go.mod" ] || die "missing $FSIMPL_DIR/go.mod"
# Content hash of the stand-in (file names and bytes), so any change to it rebuilds the server.
FSIMPL_HASH=$(cd "$FSIMPL_DIR" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
KEY="kyverno-authz-$VERSION-$FSIMPL_HASH"
OUT_DIR="$CACHE/$KEY"
OUT="$OUT_DIR/kyverno-authz"

if [ -x "$OUT" ]; then
  : # already built
else
  command -v go >/dev/null || die "Go is needed to build kyverno-authz"
  export GOWORK=off
  WRAP="$CACHE/build/$KEY"
  log "building kyverno-authz $VERSION from $MODULE in $WRAP (a few minutes, once)"
  rm -rf "$WRAP"
  mkdir -p "$WRAP" "$OUT_DIR"
  cp -R "$FSIMPL_DIR" "$WRAP/go-fsimpl"

  # The upstream go.mod: its go directive, and its non-local replace directives (a dependency's
  # replace directives are ignored by `go build`, so the wrapper repeats them).
  INFO=$(cd "$WRAP" && go mod download -json "$MODULE@$VERSION") || die "cannot download $MODULE@$VERSION: $INFO"
  GOMOD=$(printf '%s\n' "$INFO" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$GOMOD" ] || die "cannot download $MODULE@$VERSION from the Go module proxy"
  GO_DIRECTIVE=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$GOMOD" | head -n1)
  REPLACES=$(go mod edit -json "$GOMOD" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if not new.get("Version") or old["Path"] == sys.argv[1]:
        continue  # a path in the upstream checkout (absent here), or the module we replace ourselves
    print("replace", old["Path"] + ("@" + old["Version"] if old.get("Version") else ""), "=>", new["Path"], new["Version"])
' "$FSIMPL_MODULE")
  {
    echo "module example.invalid/kyverno-authz-wrapper"
    echo
    echo "go ${GO_DIRECTIVE:-1.26}"
    echo
    echo "require ("
    echo "	$MODULE $VERSION"
    for pin in "${PINS[@]}"; do echo "	${pin%@*} ${pin#*@}"; done
    echo ")"
    echo
    echo "replace $FSIMPL_MODULE => ./go-fsimpl"
    [ -z "$REPLACES" ] || printf '%s\n' "$REPLACES"
  } >"$WRAP/go.mod"

  (
    cd "$WRAP"
    CGO_ENABLED=0 go build -mod=mod -trimpath -o "$OUT.tmp" \
      -ldflags "-s -w -X $MODULE/pkg/version.BuildVersion=$VERSION" "$MODULE" >&2
  ) || { rm -f "$OUT.tmp"; die "building $MODULE@$VERSION failed (wrapper module: $WRAP)"; }
  mv "$OUT.tmp" "$OUT"
  log "built $OUT"
fi

echo "export KYVERNO_AUTHZ_BIN='$OUT'"
