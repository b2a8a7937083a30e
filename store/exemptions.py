"""Exemptions stored in the database (created from the CLI and admin pages)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from contracts.selectors import SelectorError, parse_selector
from store.models import Exemption
from store.types import utcnow

SELECTOR_KEYS = frozenset({"kind", "namespace", "name", "labels", "container"})
MAX_SELECTOR_TEXT = 1000


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_SELECTOR_TEXT


def _check_selector_values(selector: Mapping[str, Any]) -> None:
    """Globs are text or lists of text; labels are `k=v,...` text or a text-to-text map (a
    scan must never meet a selector it cannot match)."""
    for key, value in selector.items():
        if key == "labels":
            ok = _is_text(value) or (
                isinstance(value, Mapping)
                and bool(value)
                and all(_is_text(k) and isinstance(v, str) for k, v in value.items())
            )
            if ok:
                # The same parser the scan matches with: what is stored is what scans can read.
                try:
                    parse_selector(value)
                except SelectorError as problem:
                    raise ValueError(f"selector.labels: {problem}") from None
        else:
            ok = _is_text(value) or (
                isinstance(value, list) and bool(value) and all(_is_text(v) for v in value)
            )
        if not ok:
            raise ValueError(f"selector.{key}: must be text or a list of text")


def create_exemption(
    session: Session,
    *,
    rule_ids: Sequence[str],
    reason: str,
    created_by: str,
    cluster_id: str | None = None,
    selector: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> Exemption:
    """Record an exemption; a reason is required, and the selector may only use known keys."""
    if not rule_ids:
        raise ValueError("an exemption names at least one rule id")
    if not reason or not reason.strip():
        raise ValueError("an exemption needs a reason")
    unknown = set(selector or {}) - SELECTOR_KEYS
    if unknown:
        raise ValueError(f"unknown selector keys: {', '.join(sorted(unknown))}")
    _check_selector_values(selector or {})
    if cluster_id is not None and not cluster_id:
        raise ValueError("cluster_id may not be empty (leave it out for every cluster)")
    if expires_at is not None and expires_at <= utcnow():
        raise ValueError("expires_at must be in the future")
    exemption = Exemption(
        rule_ids=list(rule_ids),
        scope="cluster" if cluster_id else "global",
        cluster_id=cluster_id,
        selector=dict(selector or {}),
        reason=reason.strip(),
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(exemption)
    session.flush()
    return exemption


def list_exemptions(
    session: Session, *, cluster_id: str | None = None, include_inactive: bool = False
) -> Sequence[Exemption]:
    """Exemptions that apply to a cluster (its own and the global ones), or all of them."""
    if cluster_id is not None:
        return exemptions_by_cluster(session, [cluster_id], include_inactive=include_inactive)[
            cluster_id
        ]
    return session.scalars(_listed(include_inactive=include_inactive)).all()


def exemptions_by_cluster(
    session: Session, cluster_ids: Iterable[str], *, include_inactive: bool = False
) -> dict[str, list[Exemption]]:
    """`list_exemptions` of each of these clusters (those that apply to it: its own and the
    global ones, in id order), by cluster, read in one query (the fleet evaluation's)."""
    wanted = sorted(set(cluster_ids))
    if not wanted:
        return {}
    rows = session.scalars(
        _listed(include_inactive=include_inactive).where(
            or_(Exemption.cluster_id.in_(wanted), Exemption.scope == "global")
        )
    ).all()
    return {
        cluster_id: [e for e in rows if e.scope == "global" or e.cluster_id == cluster_id]
        for cluster_id in wanted
    }


def _listed(*, include_inactive: bool) -> Select[Exemption]:
    """Every exemption in id order (without `include_inactive`: the active ones)."""
    query = select(Exemption).order_by(Exemption.id)
    if not include_inactive:
        query = query.where(Exemption.revoked_at.is_(None))  # what `is_active` says
    return query


def is_active(exemption: Exemption) -> bool:
    """Whether an exemption is one `list_exemptions` gives without `include_inactive` (for
    a caller that read the inactive ones too and needs both)."""
    return exemption.revoked_at is None


def revoke_exemption(session: Session, exemption_id: int, *, at: datetime | None = None) -> bool:
    exemption = session.get(Exemption, exemption_id)
    if exemption is None:
        return False
    exemption.revoked_at = exemption.revoked_at or at or utcnow()
    session.flush()
    return True
