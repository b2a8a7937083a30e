"""Database exemptions become the rules' one Exemption type at the boundary."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from workers.services.exemptions import stored_exemptions

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_revoked_or_unparsable_stored_exemptions_are_not_used() -> None:
    def row(**changes: object) -> SimpleNamespace:
        fields = {
            "id": 1,
            "rule_ids": ["KM-101"],
            "selector": {},
            "reason": "r",
            "created_by": "sec",
            "scope": "global",
            "cluster_id": None,
            "expires_at": None,
            "revoked_at": None,
        }
        return SimpleNamespace(**{**fields, **changes})

    usable = stored_exemptions(
        [row(), row(id=2, revoked_at=NOW), row(id=3, selector={"labels": "a in (b"})]
    )
    assert [e.index for e in usable] == [1]
    assert usable[0].source == "database" and usable[0].owner == "sec"
