#!/usr/bin/env bash
# Provides the pinned toolchain and prints the environment that uses it (eval-able `export` lines).
#
#   - a Python virtualenv with requirements*.txt, cached by the hash of those files;
#   - the Pulumi CLI at exactly the version of the `pulumi` package in requirements.txt;
#   - the provider plugins at exactly the versions of their Python SDKs, installed into the
#     Pulumi home this project uses.
# A binary of the right version already installed (pulumi on PATH, plugins in ~/.pulumi) is used
# as is. Anything else is built from its published Go module with the Go toolchain, once per
# version, into the cache (EGRESS_TOOLS_CACHE, default ~/.cache/egress-tools). Nothing is
# downloaded from release pages.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EGRESS_TOOLS_CACHE:-$HOME/.cache/egress-tools}
mkdir -p "$CACHE"
log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

pin() { # pin FILE PACKAGE -> version from a `name==version` line
  sed -n "s/^$2==\([^ ;#]*\).*/\1/p" "$1" | head -n1
}

PULUMI_VERSION=$(pin "$ROOT/requirements.txt" pulumi)
K8S_VERSION=$(pin "$ROOT/requirements.txt" pulumi-kubernetes)
COMMAND_VERSION=$(pin "$ROOT/requirements.txt" pulumi-command)
DOCKER_VERSION=$(pin "$ROOT/requirements.txt" pulumi-docker)
[ -n "$PULUMI_VERSION" ] && [ -n "$K8S_VERSION" ] || die "requirements.txt must pin pulumi and pulumi-kubernetes"
# The Kyverno CLI of the Kyverno release the platform installs (chart 3.9.0 = Kyverno v1.19.0):
# the tests evaluate authz and admission policies with its engine.
KYVERNO_VERSION=v1.19.0
# Lints the GitHub Actions workflows users run (.github/workflows).
ACTIONLINT_VERSION=v1.7.12
# istiod (pilot-discovery) and istioctl, for the tests: the module proxy serves no istio.io/istio module
# for the 1.30.3 release the platform installs, only pseudo-versions of master; this one is the snapshot
# of 2026-08-27 (go 1.26, no replace directives), the newest the proxy lists near 1.30.
ISTIO_MODULE_VERSION=v0.0.0-20260827124520-eed52ebb66ad
# The Envoy rate limit service (github.com/envoyproxy/ratelimit) that counts each team's budget once across
# every gateway replica, for the tests: the project tags no Go module release, so the module proxy lists no
# version at all; this is what `@latest` resolves to, commit 3fb702589d36 of 2026-01-22 (go 1.25, no replace
# directives).
RATELIMIT_MODULE_VERSION=v1.4.1-0.20260122083618-3fb702589d36

# The Go module proxy serves pulumi-kubernetes' provider module only under the pseudo-version of
# each release commit, not under the release tag. Map SDK version -> module version (commit).
k8s_module_version() {
  case "$1" in
    4.25.0) echo "v4.0.0-20260115033456-f47bc2d6f199" ;; # tag v4.25.0 = commit f47bc2d6f199
    *) die "no Go module version known for pulumi-kubernetes $1; add its release commit to scripts/bootstrap.sh" ;;
  esac
}

# --- Python ------------------------------------------------------------------------------------
ensure_venv() {
  local hash venv
  hash=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/policies/requirements.txt" | sha256sum | cut -c1-16)
  venv="$CACHE/venv-$hash"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    log "creating Python environment $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt" \
      -r "$ROOT/requirements-dev.txt" -r "$ROOT/policies/requirements.txt" >&2
    touch "$venv/.complete"
  fi
  VENV=$venv
}

# --- Go builds ---------------------------------------------------------------------------------
need_go() { command -v go >/dev/null || die "Go is needed to build $1 (no binary of the pinned version was found)"; }

# go_wrapper DIR MODULE@VERSION: a throwaway main module that requires MODULE and repeats its
# non-local replace directives (those of a dependency are ignored by `go build`).
go_wrapper() {
  local dir=$1 modver=$2 gomod
  mkdir -p "$dir"
  gomod=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "$modver" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || die "cannot download $modver from the Go module proxy"
  {
    echo "module example.invalid/egress-tools-wrapper"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    grep -E '^replace .* => [^.]' "$gomod" | grep -v '=> \.' || true
  } > "$dir/go.mod"
}

# wrapper_build OUT MODULE VERSION PACKAGE LDFLAGS [MODULE@VERSION...]: build PACKAGE of MODULE at
# VERSION in a throwaway wrapper module (extra requirements pin sibling modules to the same release).
wrapper_build() {
  local out=$1 module=$2 version=$3 pkg=$4 ldflags=$5 dir
  shift 5
  dir="$CACHE/build/${module//\//_}@$version"
  go_wrapper "$dir" "$module@$version"
  (
    cd "$dir"
    GOFLAGS=-mod=mod go get "$pkg@$version" "$@" >"$dir/get.log" 2>&1 || { cat "$dir/get.log" >&2; exit 1; }
    GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" -ldflags "$ldflags" "$pkg" >&2
  )
  mv "$out.tmp" "$out"
}

build_pulumi() {
  need_go "the Pulumi CLI"
  log "building the Pulumi CLI v$PULUMI_VERSION from github.com/pulumi/pulumi/pkg/v3 (a few minutes, once)"
  wrapper_build "$1" github.com/pulumi/pulumi/pkg/v3 "v$PULUMI_VERSION" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
}

build_kubernetes() {
  local out=$1 modver src dir="$CACHE/build/kubernetes-v$K8S_VERSION"
  need_go "the kubernetes provider"
  modver=$(k8s_module_version "$K8S_VERSION")
  log "building pulumi-resource-kubernetes v$K8S_VERSION from its Go module $modver (several minutes, once)"
  src=$(cd "$CACHE" && go mod download -json "github.com/pulumi/pulumi-kubernetes/provider/v4@$modver" \
        | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || die "cannot download the kubernetes provider module $modver"
  rm -rf "$dir" && mkdir -p "$dir" && cp -r "$src" "$dir/provider" && chmod -R u+w "$dir/provider"
  (
    cd "$dir/provider"
    # Its go.mod points the SDK at a sibling checkout; use the published SDK module instead.
    go mod edit -replace "github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@v$K8S_VERSION"
    # The provider embeds a versioned copy of its schema, produced by its generate step.
    (cd cmd/pulumi-resource-kubernetes && VERSION="$K8S_VERSION" GOFLAGS=-mod=mod go run generate.go) >&2
    GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" \
      -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_VERSION" \
      ./cmd/pulumi-resource-kubernetes >&2
  )
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

build_kyverno() {
  need_go "the Kyverno CLI"
  log "building the Kyverno CLI $KYVERNO_VERSION from github.com/kyverno/kyverno (several minutes, once)"
  wrapper_build "$1" github.com/kyverno/kyverno "$KYVERNO_VERSION" github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno ""
}

ensure_kyverno() {
  local bin="$CACHE/kyverno-$KYVERNO_VERSION"
  mkdir -p "$bin"
  [ -x "$bin/kyverno" ] || build_kyverno "$bin/kyverno"
  KYVERNO_BIN="$bin/kyverno"
}

ensure_istio() {
  local bin="$CACHE/istio-$ISTIO_MODULE_VERSION" version="-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_MODULE_VERSION"
  mkdir -p "$bin"
  if [ ! -x "$bin/pilot-discovery" ] || [ ! -x "$bin/istioctl" ]; then
    need_go "istiod"
    log "building pilot-discovery and istioctl from istio.io/istio@$ISTIO_MODULE_VERSION (several minutes, once)"
    wrapper_build "$bin/pilot-discovery" istio.io/istio "$ISTIO_MODULE_VERSION" istio.io/istio/pilot/cmd/pilot-discovery "$version"
    wrapper_build "$bin/istioctl" istio.io/istio "$ISTIO_MODULE_VERSION" istio.io/istio/istioctl/cmd/istioctl "$version"
  fi
  PILOT_DISCOVERY_BIN="$bin/pilot-discovery"
  ISTIOCTL_BIN="$bin/istioctl"
}

ensure_ratelimit() {
  local bin="$CACHE/ratelimit-$RATELIMIT_MODULE_VERSION" started=$SECONDS
  if [ ! -x "$bin/ratelimit" ]; then
    need_go "the rate limit service"
    log "building the rate limit service from github.com/envoyproxy/ratelimit@$RATELIMIT_MODULE_VERSION (about a minute, once)"
    mkdir -p "$bin"
    wrapper_build "$bin/ratelimit" github.com/envoyproxy/ratelimit "$RATELIMIT_MODULE_VERSION" \
      github.com/envoyproxy/ratelimit/src/service_cmd "-s -w"
    log "built $bin/ratelimit in $((SECONDS - started)) s"
  fi
  RATELIMIT_BIN="$bin/ratelimit"
}

ensure_actionlint() {
  local bin="$CACHE/actionlint-$ACTIONLINT_VERSION"
  if [ ! -x "$bin/actionlint" ]; then
    need_go "actionlint"
    log "building actionlint $ACTIONLINT_VERSION from its Go module"
    mkdir -p "$bin"
    (cd "$CACHE" && GOBIN="$bin" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2)
  fi
  ACTIONLINT_BIN="$bin/actionlint"
}

# --- Debian packages ---------------------------------------------------------------------------
# Servers the tests start themselves on loopback (their own port and directory, never the system's
# service). Installed with apt-get only where missing; Debian's images refuse service starts during
# installs (policy-rc.d), so installing starts nothing.
APT_UPDATED=

# Finders print the path the tests use, or nothing when it is not installed.
find_redis_server() { command -v redis-server || true; }
find_postgres_bin_dir() { # the newest installed major version's bin dir with all three programs
  local dir found=
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && found="$found$dir"$'\n'
  done
  printf '%s' "$found" | sort -V | tail -n1
}

# ensure_apt_tool VAR PACKAGE FINDER: sets VAR to what FINDER prints, installing Debian's PACKAGE first
# when it prints nothing.
ensure_apt_tool() {
  local var=$1 package=$2 finder=$3 found sudo=
  found=$("$finder")
  if [ -z "$found" ]; then
    command -v apt-get >/dev/null || die "$package is not installed and there is no apt-get to install it"
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null && sudo -n true 2>/dev/null \
        || die "$package is not installed; install it (apt-get install $package) or run as root"
      sudo="sudo -n"
    fi
    log "installing Debian's $package"
    if [ -z "$APT_UPDATED" ]; then
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
      APT_UPDATED=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >&2 \
      || die "apt-get install $package failed"
    found=$("$finder")
    [ -n "$found" ] || die "installed $package but $finder still finds nothing"
  fi
  printf -v "$var" '%s' "$found"
}

# --- Pulumi CLI ----------------------------------------------------------------------------------
ensure_pulumi() {
  local bin="$CACHE/pulumi-v$PULUMI_VERSION" found
  mkdir -p "$bin"
  if [ ! -x "$bin/pulumi" ]; then
    found=$(command -v pulumi || true)
    if [ -n "$found" ] && [ "$("$found" version 2>/dev/null)" = "v$PULUMI_VERSION" ]; then
      ln -sf "$found" "$bin/pulumi"
    else
      build_pulumi "$bin/pulumi"
    fi
  fi
  PULUMI_BIN_DIR=$bin
}

# Pulumi's dynamic resources (the webhook certificate) run in the `pulumi-python` resource plugin,
# which every Pulumi install bundles next to the CLI; where the CLI was built here, put the same
# one-line launcher there.
ensure_dynamic_provider_shim() {
  local shim="$PULUMI_BIN_DIR/pulumi-resource-pulumi-python"
  cmp -s "$ROOT/scripts/pulumi-resource-pulumi-python" "$shim" || install -m 0755 "$ROOT/scripts/pulumi-resource-pulumi-python" "$shim"
}

# Python policy packs start through this analyzer plugin where no python language plugin is
# installed (the engine's fallback); reinstalled whenever the script changes.
ensure_policy_shim() {
  local shim="$ROOT/scripts/pulumi-analyzer-policy-python" dir="$PULUMI_HOME/plugins/analyzer-policy-python-v0.1.0"
  if ! cmp -s "$shim" "$dir/pulumi-analyzer-policy-python"; then
    rm -rf "$dir" "$dir.lock"
    "$PULUMI_BIN_DIR/pulumi" plugin install analyzer policy-python v0.1.0 --file "$shim" >&2
  fi
}

# --- provider plugins ----------------------------------------------------------------------------
plugin_installed() { [ -d "$PULUMI_HOME/plugins/resource-$1-v$2" ] && [ ! -e "$PULUMI_HOME/plugins/resource-$1-v$2.partial" ]; }

install_plugin() { # install_plugin NAME VERSION BINARY
  "$PULUMI_BIN_DIR/pulumi" plugin install resource "$1" "v$2" --file "$3" >&2
}

ensure_plugin() { # ensure_plugin NAME VERSION [builder]
  local name=$1 version=$2 builder=${3:-} user="$HOME/.pulumi/plugins/resource-$1-v$2" out
  plugin_installed "$name" "$version" && return 0
  if [ -x "$user/pulumi-resource-$name" ]; then
    install_plugin "$name" "$version" "$user/pulumi-resource-$name"
  elif [ -n "$builder" ]; then
    out="$CACHE/plugins/pulumi-resource-$name-v$version"
    mkdir -p "$CACHE/plugins"
    [ -x "$out" ] || "$builder" "$out"
    install_plugin "$name" "$version" "$out"
  elif [ ! -e "$CACHE/noted-absent-$name-v$version" ]; then
    # Said once per machine, not on every command.
    log "note: plugin $name v$version is not installed and its Go module is not served here;"
    log "      stacks that use it (see README, 'What runs where') cannot preview on this machine"
    touch "$CACHE/noted-absent-$name-v$version"
  fi
}

ensure_venv
ensure_pulumi
export PULUMI_HOME=${EGRESS_PULUMI_HOME:-$CACHE/pulumi-home}
mkdir -p "$PULUMI_HOME"
ensure_policy_shim
ensure_dynamic_provider_shim
ensure_plugin kubernetes "$K8S_VERSION" build_kubernetes
ensure_plugin command "$COMMAND_VERSION"
ensure_plugin docker "$DOCKER_VERSION"
if [ "${EGRESS_SKIP_CHECK_TOOLS:-}" != 1 ]; then
  ensure_kyverno
  ensure_actionlint
  # A real control plane (no nodes) and the authorization server, for the tests and `make cluster-local`.
  CONTROLPLANE_ENV=$(bash "$ROOT/scripts/build/controlplane.sh")
  AUTHZ_ENV=$(bash "$ROOT/scripts/build/kyverno-authz.sh")
  # Kyverno's admission controller, run out of cluster against the local control plane.
  ADMISSION_ENV=$(bash "$ROOT/scripts/build/kyverno-admission.sh")
  # istiod, run out of cluster against it: its webhook and the authorization it computes for ztunnel.
  ensure_istio
  # The global budget: the rate limit service and its Redis (tests/test_global_budget.py).
  ensure_ratelimit
  ensure_apt_tool REDIS_SERVER_BIN redis-server find_redis_server
  # PostgreSQL's server programs (initdb, postgres, pg_ctl), run by the tests in a throwaway directory.
  ensure_apt_tool POSTGRES_BIN_DIR postgresql find_postgres_bin_dir
fi

cat <<EOT
export EGRESS_VENV='$VENV'
export PATH='$VENV/bin:$PULUMI_BIN_DIR':"\$PATH"
export VIRTUAL_ENV='$VENV'
export PULUMI_HOME='$PULUMI_HOME'
export PULUMI_BIN='$PULUMI_BIN_DIR/pulumi'
export KYVERNO_BIN='${KYVERNO_BIN:-}'
export ACTIONLINT_BIN='${ACTIONLINT_BIN:-}'
${CONTROLPLANE_ENV:-}
${AUTHZ_ENV:-}
${ADMISSION_ENV:-}
export PILOT_DISCOVERY_BIN='${PILOT_DISCOVERY_BIN:-}'
export ISTIOCTL_BIN='${ISTIOCTL_BIN:-}'
export RATELIMIT_BIN='${RATELIMIT_BIN:-}'
export REDIS_SERVER_BIN='${REDIS_SERVER_BIN:-}'
export POSTGRES_BIN_DIR='${POSTGRES_BIN_DIR:-}'
EOT
