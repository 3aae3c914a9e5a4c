"""The rules of governed egress, one module per rule (pure, no Pulumi): approval, routes, bounds,
budgets, fail_open, and the per-kind allowlist. The CrossGuard pack (policies/) calls their checks at
`pulumi preview`; admission (manifests/admission.py) enforces the same rules on every write."""
