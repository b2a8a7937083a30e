"""Cluster versions on the pages (PostgreSQL and SQLite): the fleet page shows the release each
agent reports, and KM-619 (a release past its end of support) on the cluster and findings
pages names that release, following a new report from the next scan on."""

from __future__ import annotations

from sqlalchemy.orm import Session

from settings import Settings
from store.telemetry import record_telemetry
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, build_fleet


def test_release_and_end_of_support_on_the_pages(
    any_db_session: Session, test_settings: Settings
) -> None:
    fleet = build_fleet(any_db_session, test_settings)  # both clusters report v1.31.2
    client = fleet.app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    before = client.get("/admin/findings?rule=KM-619").get_data(as_text=True)
    assert "Kubernetes 1.31" in before and "Kubernetes 1.29" not in before
    assert "KM-619" in client.get("/admin/clusters/prod-eu?status=all").get_data(as_text=True)

    with fleet.sessions() as session:
        record_telemetry(
            session,
            "prod-eu",
            payload={"agent_version": "1", "kubernetes_version": "v1.29.3-eks-adc7111"},
        )
        session.commit()
    fleet.scan("prod-eu")
    fleet_page = client.get("/admin/").get_data(as_text=True)
    assert "v1.29.3-eks-adc7111" in fleet_page and "v1.31.2" in fleet_page
    after = client.get("/admin/findings?rule=KM-619").get_data(as_text=True)
    assert "Kubernetes 1.29" in after  # prod-eu, judged as its new release
    assert "Kubernetes 1.31" in after  # staging-us, unchanged
