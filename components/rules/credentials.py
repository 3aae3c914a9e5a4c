"""Credentials: a team object names no Secret but the team's own credentials Secret, which the gateway
adds to requests only (never responses), and never on the headers that choose the site an upstream
serves (Host, :authority, forwarding headers: domain fronting)."""

from __future__ import annotations

import json

from ..settings import names
from .cel import NS, team_object

RULE = "credentials"
# Headers a policy may never set: they choose the site an upstream (a CDN, say) serves.
_HOST_HEADERS = ("host", ":authority", "x-forwarded-host", "forwarded")
# The team's credentials Secret, the only Secret a team object may name (its identity may patch that
# one and read no other): kgateway reads a named Secret with its own rights, so any other name (even in
# the team's namespace) would hand the gateway a value the team may not see.
_OWN_SECRET = f'(m.secretRef.?namespace.orValue("") == "{names.CREDENTIALS_NAMESPACE}" && m.secretRef.name == {NS})'

OWN_SECRET_ONLY = team_object(
    RULE,
    "TrafficPolicy",
    "object.spec.?headerModifiers.?request.orValue({}).?set.orValue([])"
    ".all(m, !has(m.secretRef) || " + _OWN_SECRET + ") && "
    "object.spec.?headerModifiers.?request.orValue({}).?add.orValue([])"
    ".all(m, !has(m.secretRef) || " + _OWN_SECRET + ") && "
    "object.spec.?headerModifiers.?response.orValue({}).?set.orValue([]).all(m, !has(m.secretRef)) && "
    "object.spec.?headerModifiers.?response.orValue({}).?add.orValue([]).all(m, !has(m.secretRef))",
    f"'credentials come only from the team\\'s own Secret ({names.CREDENTIALS_NAMESPACE}/' + {NS} + "
    "'), and never go into responses'",
)
NO_CLIENT_SECRETS = team_object(
    RULE,
    "TrafficPolicy",
    "!has(object.spec.apiKeyAuth) && !has(object.spec.basicAuth)",
    "'a TrafficPolicy in a team namespace names no Secret to check clients against (apiKeyAuth, "
    "basicAuth): the platform\\'s authorization decides who calls'",
)
NO_TLS_SECRET = team_object(
    RULE,
    "BackendConfigPolicy",
    "!has(object.spec.tls) || !has(object.spec.tls.secretRef)",
    "'a BackendConfigPolicy in a team namespace names no Secret (tls.secretRef): the gateway would "
    "present a key the team may not read'",
)
NO_HOST_HEADERS = team_object(
    RULE,
    "TrafficPolicy",
    "object.spec.?headerModifiers.?request.?set.orValue([]).all(m, "
    f'!(m.name.lowerAscii() in {json.dumps(list(_HOST_HEADERS))}) && !m.name.startsWith(":"))',
    "'a TrafficPolicy never sets Host, :authority or forwarding headers: they choose the site the "
    "approved upstream serves'",
)
