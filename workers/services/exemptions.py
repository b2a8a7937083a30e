"""Exemptions stored in the database, converted at the boundary into the rules' one
`Exemption` type, so the admin pages, the CLI and the YAML configuration share one matcher
(`rules.configure`) and one meaning of every selector."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rules.config import ConfigError, Exemption
from store import models

log = logging.getLogger("k8smon.workers")


def stored_exemption(row: models.Exemption) -> Exemption | None:
    """One database exemption as an `Exemption`; None when revoked. A selector that cannot
    be parsed (stored before selectors were checked) matches nothing and is logged."""
    if row.revoked_at is not None:
        return None
    try:
        return Exemption.stored(
            exemption_id=row.id,
            rule_ids=list(row.rule_ids or []),
            selector=row.selector or {},
            reason=row.reason,
            owner=row.created_by,
            cluster=row.cluster_id if row.scope == "cluster" else None,
            expires=row.expires_at,
        )
    except ConfigError as problem:
        log.warning("exemption %s is ignored: %s", row.id, problem)
        return None


def stored_exemptions(rows: Sequence[models.Exemption]) -> tuple[Exemption, ...]:
    """The usable database exemptions, in id order."""
    return tuple(e for e in (stored_exemption(row) for row in rows) if e is not None)
