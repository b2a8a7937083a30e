"""Admin pages through the real ingest app on PostgreSQL: sign-in, roles, CSRF, headers,
fleet → cluster → resource → diff, exemptions applied by a real rescan, audit log."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from store.accounts import set_disabled
from store.models import AuditEntry, Exemption, Finding, KubeObject, ScanRun
from tests.support.factories import make_failed_scan
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, Fleet


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_pages_require_sign_in_and_redirect_back(fleet: Fleet) -> None:
    client = fleet.app.test_client()
    answer = client.get("/admin/clusters/prod-eu")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/admin/login?next=/admin/clusters/prod-eu")
    page = client.get(answer.headers["Location"])
    assert page.status_code == 200
    signed = client.post(
        answer.headers["Location"],
        data={
            "username": "alice",
            "password": ADMIN_PASSWORD,
            "csrf_token": _token(page.get_data(as_text=True)),
        },
    )
    assert signed.status_code == 302
    assert signed.headers["Location"] == "/admin/clusters/prod-eu"


def test_wrong_password_is_refused_without_saying_which_part(fleet: Fleet) -> None:
    client = fleet.app.test_client()
    token = _token(client.get("/admin/login").get_data(as_text=True))
    for username, password in (("alice", "wrong password!!"), ("nobody", ADMIN_PASSWORD)):
        answer = client.post(
            "/admin/login", data={"username": username, "password": password, "csrf_token": token}
        )
        assert answer.status_code == 401
        assert "Unknown username or wrong password." in answer.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_open_redirect_after_sign_in_is_not_followed(fleet: Fleet) -> None:
    client = fleet.app.test_client()
    token = _token(client.get("/admin/login").get_data(as_text=True))
    answer = client.post(
        "/admin/login?next=//evil.example/x",
        data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert answer.headers["Location"] == "/admin/"


def test_session_cookie_and_security_headers(fleet: Fleet) -> None:
    client = fleet.app.test_client()
    page = client.get("/admin/login")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" not in cookie
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "script-src" not in csp  # no scripts at all
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    sign_in(client, "alice", ADMIN_PASSWORD)
    signed_cookie = [h for h in client.get("/admin/").headers.getlist("Set-Cookie")]
    # A permanent (expiring) session once signed in.
    token_cookie = client.get_cookie("k8smon_session")
    assert token_cookie is not None and token_cookie.expires is not None
    assert signed_cookie is not None


def test_form_post_without_csrf_token_is_refused(admin_client: FlaskClient, fleet: Fleet) -> None:
    answer = admin_client.post(
        "/admin/exemptions", data={"rules": "KM-101", "reason": "no token", "expires": "2099-01-01"}
    )
    assert answer.status_code == 400
    assert "CSRF" in answer.get_data(as_text=True)
    bad = admin_client.post("/admin/clusters/prod-eu/rescan", data={"csrf_token": "forged"})
    assert bad.status_code == 400
    with fleet.sessions() as session:
        assert session.scalars(select(Exemption)).all() == []


def test_fleet_overview_shows_health_severities_and_trend(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    fleet.scan("prod-eu")
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert "2 clusters" in html
    row = html.split('href="/admin/clusters/prod-eu"')[1].split("</tr>")[0]
    assert "healthy" in row and "payments" in row and "v1.31.2" in row
    with fleet.sessions() as session:
        critical = session.scalar(
            select(Finding).where(Finding.cluster_id == "prod-eu", Finding.severity == "critical")
        )
    assert critical is not None
    # critical, high, ... info: each count links to the list it counts
    cells = re.findall(r'<td class="num">(?:<a href="([^"]+)">(\d+)</a>)?</td>', row)
    assert len(cells) == 5 and cells[0][1] == "1"
    link = cells[0][0].replace("&amp;", "&")
    assert link == "/admin/clusters/prod-eu?severity=critical&exact=1&status=open#findings"
    listed = admin_client.get(link).get_data(as_text=True)
    assert "1 to 1 of 1" in listed and critical.rule_id in listed.split('id="findings"')[1]
    trend = row.split('class="trend"')[1].split("</td>")[0]
    assert 'data-points="2"' in trend  # two finished scans, as SVG bars
    assert re.search(r'<span class="trend-num">\d+</span><span class="trend-scale">max', trend)


def test_cluster_resource_and_diff_pages(admin_client: FlaskClient, fleet: Fleet) -> None:
    html = admin_client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    assert "KM-101" in html and "payments" in html
    with fleet.sessions() as session:
        web = session.scalar(
            select(KubeObject).where(KubeObject.name == "web", KubeObject.cluster_id == "prod-eu")
        )
    link = f"/admin/clusters/prod-eu/objects/{web.id}"
    assert link in html
    page = admin_client.get(link).get_data(as_text=True)
    offending = re.findall(r'<span class="line offending" title="([^"]+)">([^<]*)</span>', page)
    paths = {path for path, _text in offending}
    assert "spec.template.spec.containers[0].securityContext.privileged" in paths
    assert any("privileged: true" in text for _path, text in offending)
    versions = re.findall(r'name="a" value="(\d+)"', page)
    assert len(versions) == 2
    diff = admin_client.get(f"{link}/diff?a={versions[0]}&b={versions[1]}")
    text = diff.get_data(as_text=True)
    assert diff.status_code == 200
    assert '<span class="add">+          privileged: true</span>' in text
    assert '<span class="del">-        image: registry.example/web:1.0</span>' in text
    assert admin_client.get(f"{link}/diff?a=1").status_code == 400
    assert admin_client.get("/admin/clusters/prod-eu/objects/999999").status_code == 404
    assert admin_client.get("/admin/clusters/nope").status_code == 404


def test_exemption_created_on_the_page_applies_after_rescan_and_is_audited(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    page = admin_client.get("/admin/exemptions").get_data(as_text=True)
    answer = admin_client.post(
        "/admin/exemptions",
        data={
            "csrf_token": _token(page),
            "rules": "KM-101",
            "cluster": "prod-eu",
            "kind": "Deployment",
            "namespace": "shop",
            "name": "web",
            "reason": "vendor agent needs host access",
            "expires": "2099-12-31",
        },
    )
    assert answer.status_code == 302
    with fleet.sessions() as session:
        finding = session.scalar(select(Finding).where(Finding.rule_id == "KM-101"))
        assert finding.status == "new"
    rescan = admin_client.post("/admin/clusters/prod-eu/rescan", data={"csrf_token": _token(page)})
    assert rescan.status_code == 302
    with fleet.sessions() as session:
        finding = session.scalar(select(Finding).where(Finding.rule_id == "KM-101"))
        assert finding.status == "exempted"
        actions = {(e.actor, e.action) for e in session.scalars(select(AuditEntry))}
    assert ("alice", "exemption.create") in actions
    assert ("alice", "cluster.rescan") in actions
    html = admin_client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    assert "status-exempted" in html
    audit = admin_client.get("/admin/audit").get_data(as_text=True)
    assert "exemption.create" in audit and "vendor agent" not in audit.split("<table")[0]


def test_exemption_form_names_the_missing_field(admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/exemptions").get_data(as_text=True)
    answer = admin_client.post(
        "/admin/exemptions",
        data={"csrf_token": _token(page), "rules": "KM-101", "reason": "", "expires": "soon"},
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "reason: say why" in html and "expires: give a date" in html


def test_expire_exemption_early(admin_client: FlaskClient, fleet: Fleet) -> None:
    page = admin_client.get("/admin/exemptions").get_data(as_text=True)
    admin_client.post(
        "/admin/exemptions",
        data={
            "csrf_token": _token(page),
            "rules": "KM-101",
            "reason": "temporary",
            "expires": "2099-01-01",
        },
    )
    with fleet.sessions() as session:
        exemption = session.scalar(select(Exemption))
    answer = admin_client.post(
        f"/admin/exemptions/{exemption.id}/expire", data={"csrf_token": _token(page)}
    )
    assert answer.status_code == 302
    with fleet.sessions() as session:
        assert session.get(Exemption, exemption.id).revoked_at is not None
    assert "expired early" in admin_client.get("/admin/exemptions").get_data(as_text=True)


def test_viewer_can_read_but_not_change(viewer_client: FlaskClient, fleet: Fleet) -> None:
    page = viewer_client.get("/admin/exemptions").get_data(as_text=True)
    assert "Create exemption" not in page
    answer = viewer_client.post(
        "/admin/exemptions",
        data={
            "csrf_token": _token(page),
            "rules": "KM-101",
            "reason": "x",
            "expires": "2099-01-01",
        },
    )
    assert answer.status_code == 403
    assert (
        viewer_client.post(
            "/admin/clusters/prod-eu/rescan", data={"csrf_token": _token(page)}
        ).status_code
        == 403
    )
    assert viewer_client.get("/admin/clusters/prod-eu").status_code == 200


def test_disabled_account_loses_its_session(admin_client: FlaskClient, fleet: Fleet) -> None:
    with fleet.sessions() as session:
        set_disabled(session, "alice", disabled=True)
        session.commit()
    assert admin_client.get("/admin/").status_code == 302


def test_rule_scans_search_pages(admin_client: FlaskClient, fleet: Fleet) -> None:
    rule = admin_client.get("/admin/rules/KM-101").get_data(as_text=True)
    assert "prod-eu" in rule and "staging-us" not in rule.split("Where it fires")[1]
    scans = admin_client.get("/admin/scans").get_data(as_text=True)
    assert "prod-eu" in scans and "staging-us" in scans
    found = admin_client.get(
        "/admin/search",
        query_string={
            "path": "$.spec.template.spec.containers[*].image",
            "kind": "Deployment",
            "distinct": "1",
        },
    ).get_data(as_text=True)
    assert "&#34;registry.example/api:2&#34;" in found or '"registry.example/api:2"' in found
    quoted = r'<code>(?:&#34;|")registry\.example/api:2(?:&#34;|")</code>'
    row = re.split(quoted, found)[1].split("</tr>")[0]
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["2", "2"]
    bad = admin_client.get("/admin/search", query_string={"path": "$.spec[", "kind": "x"})
    assert "invalid JSON path" in bad.get_data(as_text=True)


def test_rule_page_uses_the_wired_catalogue_and_scans_link_to_flower(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    extras = fleet.app.extensions["k8smon.ingest"].extras
    extras["rule_info"] = lambda rule_id: (
        {
            "id": rule_id,
            "title": "Privileged container",
            "severity": "critical",
            "category": "pod-security",
            "cis": ["5.2.2"],
            "pss": ["baseline"],
            "references": [],
            "remediation": "Remove securityContext.privileged.",
            "summary": "Flags privileged.",
        }
        if rule_id == "KM-101"
        else None
    )
    extras["flower_url"] = "https://flower.example/"
    page = admin_client.get("/admin/rules/KM-101").get_data(as_text=True)
    assert "Privileged container" in page and "Remove securityContext.privileged." in page
    assert "CIS 5.2.2" in page
    with fleet.sessions() as session:
        session.execute(ScanRun.__table__.update().values(task_id="abc123-task"))
        session.commit()
    scans = admin_client.get("/admin/scans").get_data(as_text=True)
    assert 'href="https://flower.example/task/abc123-task"' in scans


def test_a_failed_scan_says_why_on_the_scan_list_and_the_cluster_page(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    reason = "shard 2 did not finish after 3 re-drives <img src=x onerror=alert(1)>"
    with fleet.sessions() as session:
        scan_id = make_failed_scan(session, "prod-eu", reason=reason, redrives=3)
    escaped = "shard 2 did not finish after 3 re-drives &lt;img src=x onerror=alert(1)&gt;"
    listing = admin_client.get("/admin/scans").get_data(as_text=True)
    row = listing.split(f"<td>{scan_id}</td>")[1].split("</tr>")[0]
    assert f'failed: <span class="failure-reason">{escaped}</span>' in row
    assert "(lost steps re-sent 3 times)" in row
    assert "<img" not in listing
    cluster = admin_client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    row = cluster.split(f"<td>{scan_id}</td>")[1].split("</tr>")[0]
    assert f'failed<div class="failure-reason">{escaped}</div>' in row
    assert "<img" not in cluster
