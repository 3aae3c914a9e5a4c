"""Authorization: every team TrafficPolicy calls the platform's authz server through an extension of its
own namespace, with a route context that names the team's own destination, namespace and an approved
host (the route's), and nothing the platform's authorization does not read."""

from __future__ import annotations

import json

from ..manifests.authz import CTX_DENY_MESSAGE, CTX_DESTINATION, CTX_HEADER_PREFIX, CTX_HOST, CTX_NAMESPACE
from ..settings import names
from .cel import HOSTNAMES, NS, ROUTE_POLICIES, TEAM, team_object

RULE = "authorization"
_CONTEXT_KEYS = (CTX_DESTINATION, CTX_NAMESPACE, CTX_HOST, CTX_DENY_MESSAGE)
_CTX = "object.spec.?extAuth.?contextExtensions.orValue({})"
_BACKEND = names.AUTHZ_SERVICE, names.AUTHZ_NAMESPACE, names.AUTHZ_GRPC_PORT

POLICY_HAS_EXT_AUTH = team_object(
    RULE,
    "TrafficPolicy",
    "has(object.spec.extAuth) && has(object.spec.extAuth.extensionRef) && "
    f"!has(object.spec.extAuth.disable) && object.spec.extAuth.extensionRef.?namespace.orValue({NS}) == {NS}",
    "'every TrafficPolicy in a team namespace carries external authorization (extAuth.extensionRef "
    "to an extension of its own namespace, never disable)'",
)
CONTEXT_NAMESPACE = team_object(
    RULE,
    "TrafficPolicy",
    f'{_CTX}[?"{CTX_NAMESPACE}"].orValue("") == {NS}',
    f"'extAuth.contextExtensions.{CTX_NAMESPACE} must be the policy\\'s own namespace, ' + {NS}",
)
PLATFORM_SERVER = team_object(
    RULE,
    "GatewayExtension",
    "has(object.spec.extAuth) && !has(object.spec.extProc) && !has(object.spec.rateLimit) && "
    "!has(object.spec.jwt) && !has(object.spec.oauth2) && "
    f'object.spec.extAuth.?grpcService.?backendRef.?name.orValue("") == "{_BACKEND[0]}" && '
    f'object.spec.extAuth.grpcService.backendRef.?namespace.orValue("") == "{_BACKEND[1]}" && '
    f"object.spec.extAuth.grpcService.backendRef.?port.orValue(0) == {_BACKEND[2]}",
    f"'an extension in a team namespace is external authorization by the platform\\'s server "
    f"({_BACKEND[1]}/{_BACKEND[0]}:{_BACKEND[2]}) only'",
)
ROUTE_CONTEXT_HOST = team_object(
    RULE,
    "HTTPRoute",
    f"{ROUTE_POLICIES}.filter(tp, tp.metadata.name == object.metadata.name).all(tp, "
    f'tp.spec.?extAuth.?contextExtensions.orValue({{}})[?"{CTX_HOST}"].orValue("") in {HOSTNAMES})',
    f"'the route\\'s TrafficPolicy names another host in extAuth.contextExtensions.{CTX_HOST}'",
)
CONTEXT_OF_THE_TEAM = team_object(
    RULE,
    "TrafficPolicy",
    f'{_CTX}.all(k, k in {json.dumps(list(_CONTEXT_KEYS))} || k.startsWith("{CTX_HEADER_PREFIX}")) && '
    f'{_CTX}[?"{CTX_DESTINATION}"].orValue("").startsWith(variables.team + "/") && '
    f'variables.approvals.exists(a, a.host == {_CTX}[?"{CTX_HOST}"].orValue(""))',
    f"'extAuth.contextExtensions names this team\\'s own destination ({CTX_DESTINATION}: <team>/<name>) "
    f"and a host approved for it ({CTX_HOST}), and nothing the platform\\'s authorization does not read' + {TEAM}",
)
EXT_AUTH_TYPE = team_object(
    RULE,
    "GatewayExtension",
    'object.spec.?type.orValue("") == "ExtAuth"',
    "'an extension in a team namespace is of type ExtAuth'",
)
