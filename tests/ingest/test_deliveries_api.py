"""Dead letters through the admin API and /metrics (a live server, real PostgreSQL): listed with
their last error, counted in `k8smon_deliveries{state="dead"}`, re-sent by an admin (audited,
the delivery task queued), refused to a viewer and for anything that is not a dead letter."""

from __future__ import annotations

import re
from datetime import timedelta

import requests
from sqlalchemy import select

from contracts.tasks import DELIVER_REPORTS
from store.deliveries import RetryPolicy, claim, ensure_delivery, mark_failed
from store.models import AuditEntry, Delivery
from tests.ingest.conftest import Server

GIVE_UP_NOW = RetryPolicy(
    backoff=timedelta(seconds=1), backoff_cap=timedelta(seconds=1), window=timedelta(0)
)


def dead_gauge(server: Server) -> float:
    text = requests.get(server.base_url + "/metrics", timeout=5).text
    found = re.search(r'^k8smon_deliveries\{state="dead"\} (\S+)$', text, re.MULTILINE)
    assert found, text
    return float(found[1])


def dead_letter(server: Server, cluster_id: str) -> int:
    """A delivery whose receiver never answered, given up at once (a zero retry window)."""
    with server.sessions() as session:
        delivery = ensure_delivery(
            session, cluster_id=cluster_id, scan_run_id=1, channel="https://hooks.example/<b>x</b>"
        )
        session.commit()
        assert claim(session, delivery.id) is not None
        state = mark_failed(
            session, delivery.id, error="webhook answered 503: <down>", policy=GIVE_UP_NOW
        )
        session.commit()
        assert state == "dead"
        return delivery.id


def test_a_dead_letter_is_listed_counted_and_resent_by_an_admin(server: Server) -> None:
    cluster_id = server.register_cluster().cluster_id
    before = dead_gauge(server)
    delivery_id = dead_letter(server, cluster_id)
    assert dead_gauge(server) == before + 1

    viewer, admin = server.admin(role="viewer"), server.admin()
    listed = viewer.json("GET", "/v1/admin/deliveries?state=dead").json()["deliveries"]
    [row] = [d for d in listed if d["id"] == delivery_id]
    assert row["state"] == "dead" and row["cluster_id"] == cluster_id and row["attempts"] == 1
    assert row["last_error"] == "webhook answered 503: <down>" and row["dead_at"]
    assert viewer.json("GET", "/v1/admin/deliveries?state=lost").status_code == 400
    assert viewer.json("POST", f"/v1/admin/deliveries/{delivery_id}/resend").status_code == 403

    resent = admin.json("POST", f"/v1/admin/deliveries/{delivery_id}/resend")
    assert resent.status_code == 202, resent.text
    assert resent.json()["state"] == "pending" and resent.json()["dead_at"] is None
    assert (DELIVER_REPORTS, [], {}) in server.dispatcher.calls
    assert dead_gauge(server) == before
    with server.sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None and delivery.state == "pending"
        assert delivery.idempotency_key == row["idempotency_key"], "the same key on re-send"
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.target == f"delivery/{delivery_id}")
        ).all()
    assert [(a.action, a.details["channel"]) for a in audit] == [
        ("delivery.resend", "https://hooks.example/…")
    ]

    again = admin.json("POST", f"/v1/admin/deliveries/{delivery_id}/resend")
    assert again.status_code == 409 and "only a dead letter" in again.json()["detail"]
    assert admin.json("POST", "/v1/admin/deliveries/987654321/resend").status_code == 404
