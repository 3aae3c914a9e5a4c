"""Endpoints: where an approved host's traffic goes. A team's ServiceEntry is external, names one host
on approved ports, resolves it by DNS or to the approval's own addresses, and keeps the host of the
routes that send to it; a route sends only to such an entry of its own namespace, host and port."""

from __future__ import annotations

from .cel import HOSTNAMES, NS, judged_entry, team_entry, team_object

RULE = "endpoints"

ADDRESSES_APPROVED = judged_entry(
    RULE,
    "!has(object.spec.endpoints) || object.spec.endpoints.all(e, has(e.address) && "
    "variables.approvals.exists(a, a.host in object.spec.hosts && has(a.addresses) && "
    "e.address in a.addresses))",
    "endpoint addresses must be the ones the approval lists",
)
EXTERNAL = team_entry(
    RULE,
    'variables.external && object.spec.?location.orValue("") == "MESH_EXTERNAL"',
    "a ServiceEntry in a team namespace is location: MESH_EXTERNAL (kgateway sends to a "
    "MESH_INTERNAL entry just the same, and no approval covers it)",
)
ONE_HOST = team_entry(
    RULE,
    "object.spec.hosts.size() == 1 && variables.ports.size() > 0",
    "a ServiceEntry in a team namespace names one host and at least one port",
)
RESOLUTION = team_entry(
    RULE,
    'object.spec.?resolution.orValue("") in ["DNS", "STATIC"] && '
    '(!has(object.spec.endpoints) || object.spec.resolution == "STATIC")',
    "resolution is DNS (of the approved host) or STATIC (endpoints the approval lists)",
)
_ROUTES_TO_IT = (
    "variables.routes.filter(r, r.spec.?rules.orValue([]).exists(x, x.?backendRefs.orValue([]).exists(b, "
    'b.?kind.orValue("") == "ServiceEntry" && b.name == object.metadata.name)))'
)
KEEPS_ROUTE_HOST = team_entry(
    RULE,
    f"{_ROUTES_TO_IT}.all(r, r.spec.?hostnames.orValue([]) == object.spec.hosts)",
    "a ServiceEntry that a route sends to keeps the route's host",
)
ROUTE_BACKENDS_LOCAL = team_object(
    RULE,
    "HTTPRoute",
    "object.spec.?rules.orValue([]).all(r, r.?backendRefs.orValue([]).all(b, "
    'b.?group.orValue("") == "networking.istio.io" && b.?kind.orValue("Service") == "ServiceEntry" '
    f"&& b.?namespace.orValue({NS}) == {NS}))",
    "'a route in a team namespace sends only to ServiceEntries of its own namespace'",
)
ROUTE_BACKEND_OF_ITS_HOST = team_object(
    RULE,
    "HTTPRoute",
    "object.spec.?rules.orValue([]).all(r, r.?backendRefs.orValue([]).size() > 0 && r.backendRefs.all(b, "
    "variables.entries.exists(e, e.metadata.name == b.name && e.spec.?hosts.orValue([]) == "
    f"{HOSTNAMES} && e.spec.?ports.orValue([]).exists(p, int(p.number) == int(b.?port.orValue(0))))))",
    "'a route sends only to a ServiceEntry of its namespace with the route\\'s own host and port "
    "(create the ServiceEntry first)'",
)
