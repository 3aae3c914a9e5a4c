# Governed egress as code. `make up STACK=dev` builds the platform on kind; `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
# Local state: Pulumi's file backend in a git-ignored folder of the project; no Pulumi Cloud account.
STATE_DIR := $(CURDIR)/.pulumi-state
export PULUMI_BACKEND_URL ?= file://$(STATE_DIR)
# Passphrase of the dev stacks' secrets (documented in the README); set your own for real stacks.
export PULUMI_CONFIG_PASSPHRASE ?= egress-dev-only
export PULUMI_SKIP_UPDATE_CHECK := true
# A missing plugin fails fast with a clear message instead of a download attempt.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

TOOLS_ENV := .tools.env
ENV := source $(TOOLS_ENV) &&
INLINE := python scripts/pulumi_inline.py
PULUMI := $(ENV) $(INLINE)

.PHONY: help tools deploy-tools stack up preview outputs team-kubeconfig usage audit destroy render print sandbox cluster-local lint typecheck pytest test clean

help:
	@echo "make up STACK=dev        build the platform (kind, Istio ambient, kgateway, Kyverno, authz, Ollama)"
	@echo "make preview STACK=...   real pulumi preview with the policy pack"
	@echo "make render STACK=...    GitOps: write a team stack's manifests to rendered/<stack>/ (real engine)"
	@echo "make print STACK=...     print the objects a stack creates directly (multi-document YAML)"
	@echo "make sandbox STACK=...   run the stack's egress path offline (real Envoy) and check it"
	@echo "make outputs STACK=...   the stack's outputs (try commands, gateway address, approvals, teams)"
	@echo "make team-kubeconfig TEAM=...  a team's own kubeconfig (platform access needed; for the team's CI)"
	@echo "make audit               team objects whose approval has ended or that none covers (current context)"
	@echo "make usage STACK=...     requests, denials, 429s, retries, p50/p99 per team and destination (LOG=, FORMAT=json|csv)"
	@echo "make cluster-local       a local control plane (no nodes) with an admin kubeconfig, until Ctrl-C"
	@echo "make test                everything CI runs"
	@echo "make destroy STACK=...   tear the stack down"

# Everything: what deploying needs and the test toolchain (built from Go once, then cached).
tools:
	@bash scripts/bootstrap.sh > $(TOOLS_ENV).tmp && mv $(TOOLS_ENV).tmp $(TOOLS_ENV)

# What deploying needs: the Python environment, the Pulumi CLI and its provider plugins; never the
# test toolchain.
deploy-tools:
	@EGRESS_SKIP_CHECK_TOOLS=1 bash scripts/bootstrap.sh > $(TOOLS_ENV).tmp && mv $(TOOLS_ENV).tmp $(TOOLS_ENV)

$(STATE_DIR):
	@mkdir -p $@

stack: deploy-tools | $(STATE_DIR)
	@$(ENV) { pulumi stack select $(STACK) 2>/dev/null || pulumi stack init $(STACK); }

# Docker and kind first (before anything is installed), then the rest once the tools are there.
up:
	@scripts/preflight-host $(STACK)
	@$(MAKE) --no-print-directory deploy-tools
	@$(ENV) python scripts/preflight.py $(STACK)
	@$(MAKE) --no-print-directory stack STACK=$(STACK)
	@$(PULUMI) up --stack $(STACK) --yes

preview: stack
	@$(PULUMI) preview --stack $(STACK) --policy-pack policies

# Stack outputs. The platform exports no credential (team stacks read its outputs).
outputs: deploy-tools | $(STATE_DIR)
	@$(ENV) pulumi stack output --stack $(STACK) --json

# A team's identity for its stack, from the cluster of the current kubectl context (platform access).
team-kubeconfig:
	@test -n "$(TEAM)" || { echo "make team-kubeconfig: set TEAM=<name from egress:teams>" >&2; exit 1; }
	@scripts/team-kubeconfig $(TEAM)

destroy: stack
	@$(PULUMI) destroy --stack $(STACK) --yes

# GitOps: the real `pulumi up` with the kubernetes provider's render-to-directory option, on a
# companion stack (<stack>-render) so the team stack's own state is untouched.
render: deploy-tools | $(STATE_DIR)
	@test -f Pulumi.$(STACK).yaml || { echo "make render: Pulumi.$(STACK).yaml does not exist" >&2; exit 1; }
	@cp Pulumi.$(STACK).yaml Pulumi.$(STACK)-render.yaml
	@$(ENV) { pulumi stack select $(STACK)-render 2>/dev/null || pulumi stack init $(STACK)-render; }
	@rm -rf rendered/$(STACK)
	@$(ENV) EGRESS_RENDER_DIR=$(CURDIR)/rendered/$(STACK) PULUMI_SKIP_CHECKPOINTS=true $(INLINE) up --stack $(STACK)-render --yes --skip-preview
	@echo "manifests written to rendered/$(STACK)/"

# Offline proof of the path: real Envoy (and the Kyverno authz server where it can be built) on loopback.
sandbox: tools
	@$(ENV) python -m sandbox Pulumi.$(STACK).yaml --access-log .sandbox/$(STACK)-access.log

# Who called what through the gateway: per team and destination, from its JSON access log (default:
# the last `make sandbox` of the stack; LOG=- reads stdin, e.g. `kubectl logs` of the gateway).
# FORMAT=json or csv for dashboards.
LOG ?= .sandbox/$(STACK)-access.log
FORMAT ?= table
usage:
	@$(MAKE) --no-print-directory deploy-tools
	@$(ENV) python -m components.usage --log $(LOG) --format $(FORMAT) Pulumi.$(STACK).yaml

# Team objects whose approval has ended or that no approval covers, in the cluster of the current
# kubectl context (platform access), against the registry that cluster holds.
audit: deploy-tools
	@$(ENV) python -m components.audit

# The objects a stack creates directly, from its config file alone (no engine, no state).
print:
	@$(MAKE) --no-print-directory deploy-tools
	@$(ENV) python -m components.manifests Pulumi.$(STACK).yaml

# A real kube-apiserver, etcd and kube-controller-manager on loopback (no nodes: pods never run).
cluster-local: tools
	@$(ENV) python -m devenv.controlplane

lint: tools
	@$(ENV) ruff check . && $(ENV) ruff format --check .

typecheck: tools
	@$(ENV) mypy

pytest: tools | $(STATE_DIR)
	@$(ENV) python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(TOOLS_ENV) .pytest_cache .mypy_cache .ruff_cache
