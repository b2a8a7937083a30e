"""The server shows what the agent could not collect: the cluster page, the admin telemetry API
and `k8smon telemetry` (issue 19, defects 2 and 3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from cli.commands.telemetry import last_push_text
from settings import Settings
from store.telemetry import collection_gaps, latest_ping, record_telemetry
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, build_fleet

pytestmark = [pytest.mark.postgres]

GAPS = {
    "not_collected": {
        "configmaps": "forbidden",
        "discovery /apis/metrics.k8s.io/v1beta1": "failed",
    },
    "unserved_types": ["validatingadmissionpolicies.admissionregistration.k8s.io"],
}


def test_the_cluster_page_shows_types_not_collected(
    db_session: Session, test_settings: Settings
) -> None:
    fleet = build_fleet(db_session, test_settings)
    with fleet.sessions() as session:
        record_telemetry(
            session,
            "prod-eu",
            payload={"agent_version": "0.1.0", "details": {"key_fingerprint": "f", **GAPS}},
        )
        session.commit()
        assert collection_gaps(latest_ping(session, "prod-eu")) == GAPS
        assert collection_gaps(latest_ping(session, "no-such-cluster")) == {
            "not_collected": {},
            "unserved_types": [],
        }
    client = fleet.app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    html = client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    assert "Not collected in the agent's latest run" in html
    assert "configmaps: forbidden" in html
    assert "discovery /apis/metrics.k8s.io/v1beta1: failed" in html
    assert "<code>validatingadmissionpolicies.admissionregistration.k8s.io</code>" in html
    other = client.get("/admin/clusters/staging-us").get_data(as_text=True)
    assert "Not collected" not in other


def test_k8smon_telemetry_names_the_types_not_collected() -> None:
    row = {
        "last_push": {"result": "accepted", "type": "delta"},
        "errors": {"configmaps": "forbidden: configmaps is forbidden"},
        **GAPS,
    }
    text = last_push_text(row, now=datetime.now(UTC))
    assert text == (
        "accepted (delta); 1 collection error; not collected: configmaps (forbidden), "
        "discovery /apis/metrics.k8s.io/v1beta1 (failed)"
    )
