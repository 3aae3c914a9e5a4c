"""Pure manifests: stack config in, plain Kubernetes object dicts out. Nothing here imports Pulumi."""
