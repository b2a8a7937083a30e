"""`store.exemptions.is_active` says what `list_exemptions` leaves out without
`include_inactive` (finalize reads the inactive ones too and filters them in Python);
`exemptions_by_cluster` gives each cluster what `list_exemptions` gives it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.exemptions import (
    exemptions_by_cluster,
    is_active,
    list_exemptions,
    revoke_exemption,
)
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


def test_exemptions_by_cluster_gives_each_cluster_its_list(any_db_session: Session) -> None:
    session = any_db_session
    for cluster_id in ("a", "b", "c"):
        make_cluster(session, cluster_id)
    first_global = make_exemption(session, rule_ids=("KM-103",))
    own_a = make_exemption(session, cluster_id="a")
    own_b = make_exemption(session, cluster_id="b", rule_ids=("KM-102",))
    revoked_a = make_exemption(session, cluster_id="a", rule_ids=("KM-104",))
    assert revoke_exemption(session, revoked_a.id)
    second_global = make_exemption(session, rule_ids=("KM-105",))
    make_exemption(session, cluster_id="c", rule_ids=("KM-106",))  # c is not asked for

    for include_inactive in (False, True):
        found = exemptions_by_cluster(session, ["b", "a", "a"], include_inactive=include_inactive)
        assert found == {
            cluster_id: list(
                list_exemptions(session, cluster_id=cluster_id, include_inactive=include_inactive)
            )
            for cluster_id in ("a", "b")
        }
    found = exemptions_by_cluster(session, ["a", "b", "unknown"])
    assert [e.id for e in found["a"]] == [first_global.id, own_a.id, second_global.id]
    assert [e.id for e in found["b"]] == [first_global.id, own_b.id, second_global.id]
    assert [e.id for e in found["unknown"]] == [first_global.id, second_global.id]
    assert exemptions_by_cluster(session, []) == {}
