"""Offline proof of the egress path: real Envoy and the real Kyverno authz server, driven by the stack config."""
