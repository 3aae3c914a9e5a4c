"""Governed egress as code, in layers: settings (config, names, pins) -> manifests (pure dicts) ->
platform and team components (Pulumi) -> program (the two stack roles)."""
