"""`store.exemptions.is_active` says what `list_exemptions` leaves out without
`include_inactive` (finalize reads the inactive ones too and filters them in Python)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.exemptions import is_active, list_exemptions, revoke_exemption
from tests.support.factories import make_cluster, make_exemption


def test_is_active_keeps_what_list_exemptions_gives(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "c")
    kept = make_exemption(session, cluster_id="c")
    revoked = make_exemption(session, cluster_id="c", rule_ids=("KM-102",))
    global_one = make_exemption(session, rule_ids=("KM-103",))
    assert revoke_exemption(session, revoked.id)
    every = list_exemptions(session, cluster_id="c", include_inactive=True)
    assert [e.id for e in every] == [kept.id, revoked.id, global_one.id]
    assert [e for e in every if is_active(e)] == list(list_exemptions(session, cluster_id="c"))
    assert [e.id for e in every if is_active(e)] == [kept.id, global_one.id]
