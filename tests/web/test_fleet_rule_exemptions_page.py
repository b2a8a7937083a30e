"""An exemption made on the exemptions page with a label selector (and a container) covers
the fleet rules' findings (KM-621 drift, KM-622 advisories) from the cluster's rescan, which
evaluates the fleet rules for that cluster; on PostgreSQL and SQLite."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.advisories import parse_advisories
from settings import Settings
from store.advisories import load_advisories
from store.models import Exemption, Finding
from tests.support.factories import make_cluster
from tests.support.manifests import deployment
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, build_fleet, push
from tests.web.test_pages import _token

APP = "r.example/log4j-app"


def test_a_label_exemption_made_on_the_page_covers_fleet_findings(
    any_db_session: Session, test_settings: Settings
) -> None:
    fleet = build_fleet(any_db_session, test_settings)
    legacy = deployment("legacy", namespace="shop", image=f"{APP}:2.14.1")
    legacy["metadata"]["labels"]["team"] = "legacy"
    with fleet.sessions() as session:
        load_advisories(
            session,
            parse_advisories(
                {
                    "id": "TEST-PAGE-1",
                    "severity": "high",
                    "affected": [{"repository": APP, "introduced": "2.0", "fixed": "2.15.0"}],
                }
            ),
            loaded_by="test",
        )
        make_cluster(session, "ahead")
        make_cluster(session, "legacy-dc")
        push(session, "ahead", [deployment("app", namespace="shop", image=f"{APP}:2.17.1")])
        push(
            session,
            "legacy-dc",
            [legacy, deployment("current", namespace="shop", image=f"{APP}:2.14.1")],
        )
        session.commit()
    client = fleet.app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    page = client.get("/admin/exemptions").get_data(as_text=True)
    assert 'name="labels"' in page and 'name="container"' in page
    refused = client.post(
        "/admin/exemptions",
        data={
            "csrf_token": _token(page),
            "rules": "KM-621",
            "labels": "team in (legacy",
            "reason": "x",
            "expires": "2099-12-31",
        },
    )
    assert refused.status_code == 400 and "selector.labels" in refused.get_data(as_text=True)
    created = client.post(
        "/admin/exemptions",
        data={
            "csrf_token": _token(page),
            "rules": "KM-621 KM-622",
            "labels": "team=legacy",
            "container": "main",
            "reason": "legacy app, replaced next quarter",
            "expires": "2099-12-31",
        },
    )
    assert created.status_code == 302, created.get_data(as_text=True)
    rescan = client.post("/admin/clusters/legacy-dc/rescan", data={"csrf_token": _token(page)})
    assert rescan.status_code == 302
    with fleet.sessions() as session:
        (selector,) = session.scalars(select(Exemption.selector)).all()
        assert selector == {"labels": "team=legacy", "container": "main"}
        found = sorted(
            (r, n, str(s))
            for r, n, s in session.execute(
                select(Finding.rule_id, Finding.name, Finding.status).where(
                    Finding.cluster_id == "legacy-dc", Finding.rule_id.in_(("KM-621", "KM-622"))
                )
            )
        )
    assert found == [
        ("KM-621", "current", "new"),
        ("KM-621", "legacy", "exempted"),
        ("KM-622", "current", "new"),
        ("KM-622", "legacy", "exempted"),
    ]
    cluster_page = client.get("/admin/clusters/legacy-dc?status=all").get_data(as_text=True)
    assert "KM-622" in cluster_page and "status-exempted" in cluster_page
