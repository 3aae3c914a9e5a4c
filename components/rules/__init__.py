"""The rules of governed egress, one module per rule (pure, no Pulumi): approval, endpoints, routes,
authorization, credentials, budgets, fail_open, tls, bounds, and the per-kind allowlist. Each holds its
admission CEL (manifests/admission.py assembles the policies from them; a refusal's message starts with
`egress <rule>:`) and, where the object or the stack alone decides, its CrossGuard check (policies/)."""
