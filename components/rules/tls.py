"""TLS: a team's BackendConfigPolicy originates TLS to one host approved for the team, sends that host
as SNI and verifies that it, and only it, is named in the upstream's certificate, from the system CAs."""

from __future__ import annotations

from .cel import TEAM, team_object

RULE = "tls"
_TLS = "object.spec.?tls.orValue({})"
_HOST = 'object.spec.?targetRefs.orValue([{"name": ""}])[0].name'

VERIFIED = team_object(
    RULE,
    "BackendConfigPolicy",
    "!object.spec.?tls.?insecureSkipVerify.orValue(false) && (!has(object.spec.tls) || "
    "object.spec.tls.?verifySubjectAltNames.orValue([]).size() > 0)",
    "'TLS to an external host verifies its certificate and names (no insecureSkipVerify; verifySubjectAltNames set)'",
)
APPROVED_HOST = team_object(
    RULE,
    "BackendConfigPolicy",
    "object.spec.?targetRefs.orValue([]).size() == 1 && object.spec.targetRefs.all(t, "
    't.group == "networking.istio.io" && t.kind == "Hostname" && '
    "variables.approvals.exists(a, a.host == t.name))",
    f"'a BackendConfigPolicy targets one Hostname, a host approved for its team' + {TEAM}",
)
THAT_HOST_ONLY = team_object(
    RULE,
    "BackendConfigPolicy",
    f'{_TLS}[?"sni"].orValue("") == {_HOST} && {_TLS}[?"verifySubjectAltNames"].orValue([]) == '
    f'[{_HOST}] && {_TLS}[?"wellKnownCACertificates"].orValue("") == "System"',
    "'TLS to an approved host sends that host as SNI and verifies that it, and only it, is named in "
    "the certificate (sni, verifySubjectAltNames), from the system CAs'",
)
