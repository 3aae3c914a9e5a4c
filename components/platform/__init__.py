"""Platform components: cluster, mesh, gateway, Kyverno, authz server, and the platform stack role."""
