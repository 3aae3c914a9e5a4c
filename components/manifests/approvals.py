"""The approval registry: which (host, port, team) security has approved, until when (pure, no Pulumi)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..settings import names
from ..settings.config import Approval


def covering(approvals: Iterable[Approval], host: str, port: int, team: str) -> Approval | None:
    """The registry entry for this host, port and team (expired or not), or None.

    The newest expiry wins when several entries cover the same destination.
    """
    found = [a for a in approvals if a.host == host and port in a.ports and team in a.teams]
    return max(found, key=lambda a: a.expires, default=None)


def is_current(approval: Approval | None, today: dt.date) -> bool:
    """An entry approves only until (and including) its expiry day."""
    return approval is not None and approval.expires >= today


def approval_metadata(approval: Approval | None, today: dt.date) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) for a ServiceEntry: the approved label only while the entry is unexpired.

    An expired entry still records its ticket and expiry, so the policies can say it expired.
    """
    if approval is None:
        return {}, {}
    labels = {names.APPROVED_LABEL: names.APPROVED_VALUE} if is_current(approval, today) else {}
    annotations = {
        names.TICKET_ANNOTATION: approval.ticket,
        names.APPROVER_ANNOTATION: approval.approved_by,
        names.EXPIRES_ANNOTATION: approval.expires.isoformat(),
    }
    if approval.allow_fail_open:
        annotations[names.FAIL_OPEN_ANNOTATION] = names.FAIL_OPEN_VALUE
    if approval.rate_limit is not None:
        ceiling = approval.rate_limit
        annotations[names.RATE_LIMIT_ANNOTATION] = f"{ceiling.requests}/{ceiling.per}/{ceiling.max_tokens}"
    return labels, annotations


def to_output(approvals: Sequence[Approval]) -> list[dict[str, Any]]:
    """The registry as the platform stack exports it (read back by team stacks)."""
    return [a.model_dump(mode="json", by_alias=True) for a in approvals]


def from_output(raw: Sequence[Mapping[str, Any]] | None) -> list[Approval]:
    return [Approval.model_validate(dict(r)) for r in (raw or [])]


def is_marked_approved(service_entry: Mapping[str, Any]) -> bool:
    """Whether a ServiceEntry we built carries the approval label (for the stack's own outputs)."""
    labels = (service_entry.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(names.APPROVED_LABEL) == names.APPROVED_VALUE)
