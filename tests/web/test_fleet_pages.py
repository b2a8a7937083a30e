"""Issue 16 on the small seeded fleet: filters, accept-the-risk, charts, rule docs, audit
kinds, scans columns and the HTML 404 pages, through the real ingest app."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from cli.wsgi import rule_catalogue
from store.models import Exemption, Finding, ScanRun
from tests.web.fleet import Fleet


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _wire_catalogue(fleet: Fleet) -> None:
    from rules import default_rules  # noqa: PLC0415 - the test plays composition root

    extras = fleet.app.extensions["k8smon.ingest"].extras
    extras["rule_info"] = rule_catalogue().get
    extras["rule_doc"] = {rule.id: rule.meta.doc for rule in default_rules()}.get


def test_unknown_admin_urls_and_rules_are_html_404_pages(admin_client: FlaskClient) -> None:
    for url in ("/admin/nope", "/admin/clusters/prod-eu/nothing/here", "/admin/rules/KM-999"):
        answer = admin_client.get(url)
        assert answer.status_code == 404, url
        assert answer.mimetype == "text/html", url
        assert "<h1>404 · Not Found</h1>" in answer.get_data(as_text=True), url
    signed_out = admin_client.application.test_client().get("/admin/nope")
    assert signed_out.status_code == 404 and signed_out.mimetype == "text/html"


def test_rule_page_renders_the_docstring_escaped_and_links_references(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    _wire_catalogue(fleet)
    html = admin_client.get("/admin/rules/KM-101").get_data(as_text=True)
    assert "<h2>Why is this bad?</h2>" in html
    assert '<code class="language-yaml">' in html and "privileged: true" in html
    assert 'href="https://kubernetes.io/docs/concepts/security/pod-security-standards/"' in html
    extras = fleet.app.extensions["k8smon.ingest"].extras
    extras["rule_doc"] = lambda _id: "Lead.\n\n<script>alert(1)</script> [x](javascript:alert(1))"
    hostile = admin_client.get("/admin/rules/KM-101").get_data(as_text=True)
    assert "<script>alert" not in hostile and "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile
    assert 'href="javascript:' not in hostile


def test_cluster_page_summary_filters_and_charts(admin_client: FlaskClient, fleet: Fleet) -> None:
    _wire_catalogue(fleet)
    fleet.scan("prod-eu")
    html = admin_client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    top = html.split('id="findings"')[0]
    # Summary first: severity tiles, last-scan changes, the rules table with titles.
    assert 'class="tile sev-critical"' in top and "last scan:" in top
    assert re.search(r'id="rule-KM-101".*?Privileged container', top, flags=re.S)
    with fleet.sessions() as session:
        done = session.scalars(
            select(ScanRun).where(ScanRun.cluster_id == "prod-eu", ScanRun.state == "done")
        ).all()
        active = session.scalars(
            select(Finding).where(
                Finding.cluster_id == "prod-eu", Finding.status.in_(("new", "open"))
            )
        ).all()
    # One point per finished scan in each of the five severity lines.
    trend = top.split('<svg class="chart line"')[1].split("</svg>")[0]
    assert trend.count('<circle class="point"') == 5 * len(done)
    critical_points = re.findall(r'data-series="critical">.*?</g>', trend, flags=re.S)[0].count(
        "<circle"
    )
    assert critical_points == len(done)
    # The filter narrows the list: severity at or above high keeps only critical and high.
    narrowed = admin_client.get("/admin/clusters/prod-eu?severity=high").get_data(as_text=True)
    listed = narrowed.split('id="findings"')[1]
    severities = set(re.findall(r'<td><span class="badge sev-(\w+)">', listed))
    assert severities <= {"critical", "high"}
    expected = sum(1 for f in active if f.severity in ("critical", "high"))
    assert len(re.findall(r'<tr class="status-', listed)) == expected
    assert expected < len(active)


def test_accept_the_risk_prefills_the_form_and_the_list_says_what_it_covers(
    admin_client: FlaskClient, viewer_client: FlaskClient, fleet: Fleet
) -> None:
    html = admin_client.get("/admin/clusters/prod-eu?rule=KM-101").get_data(as_text=True)
    link = re.search(r'<a class="accept" href="([^"]+)">accept the risk</a>', html).group(1)
    link = link.replace("&amp;", "&")
    assert link.startswith("/admin/exemptions?")
    assert "accept the risk" not in viewer_client.get("/admin/clusters/prod-eu").get_data(
        as_text=True
    )
    form = admin_client.get(link).get_data(as_text=True)
    for name, value in (
        ("rules", "KM-101"),
        ("kind", "Deployment"),
        ("namespace", "shop"),
        ("name", "web"),
    ):
        assert f'name="{name}" value="{value}"' in form
    assert '<option value="prod-eu" selected>' in form
    assert "Accepting the risk of <strong>KM-101</strong>" in form
    answer = admin_client.post(
        "/admin/exemptions",
        data={
            "csrf_token": _token(form),
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
    fleet.scan("prod-eu")
    with fleet.sessions() as session:
        exemption = session.scalar(select(Exemption))
    listing = admin_client.get("/admin/exemptions").get_data(as_text=True)
    row = listing.split(f"<td>{exemption.id}</td>")[1].split("</tr>")[0]
    assert "vendor agent needs host access" in row and "alice" in row and "2099-12-31" in row
    assert "KM-101</a> Privileged container" in row  # the rule's title next to its id
    assert "prod-eu" in row and "kind=Deployment" in row and "name=web" in row
    covered = re.search(r'<a href="([^"]+)">1</a>', row).group(1).replace("&amp;", "&")
    exempted = admin_client.get(covered).get_data(as_text=True)
    assert "1 to 1 of 1" in exempted and "status-exempted" in exempted


def test_fleet_findings_view_filters_and_pages(admin_client: FlaskClient, fleet: Fleet) -> None:
    everything = admin_client.get("/admin/findings").get_data(as_text=True)
    assert "prod-eu" in everything and "staging-us" in everything
    only_staging = admin_client.get("/admin/findings?team=platform").get_data(as_text=True)
    listed = only_staging.split('id="findings"')[1]
    assert "staging-us" in listed and "/admin/clusters/prod-eu" not in listed
    labelled = admin_client.get("/admin/findings?label=env%3Dprod").get_data(as_text=True)
    assert "/admin/clusters/staging-us" not in labelled.split('id="findings"')[1]
    assert admin_client.get("/admin/findings?severity=nope").status_code == 400


def test_audit_log_separates_changes_from_reads_and_filters(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    page = admin_client.get("/admin/exemptions").get_data(as_text=True)
    admin_client.post("/admin/clusters/prod-eu/rescan", data={"csrf_token": _token(page)})
    changes = admin_client.get("/admin/audit").get_data(as_text=True)
    table = changes.split('<table class="audit">')[1]
    assert "cluster.rescan" in table and "session.sign_in" not in table
    sign_ins = admin_client.get("/admin/audit?kind=sign-ins").get_data(as_text=True)
    table = sign_ins.split('<table class="audit">')[1]
    assert "session.sign_in" in table and "cluster.rescan" not in table
    by_action = admin_client.get("/admin/audit?kind=all&action=cluster.rescan&actor=alice")
    table = by_action.get_data(as_text=True).split('<table class="audit">')[1]
    assert "cluster.rescan" in table and "session.sign_in" not in table
    nobody = admin_client.get("/admin/audit?kind=all&actor=mallory").get_data(as_text=True)
    assert "Nothing recorded that matches" in nobody
    assert admin_client.get("/admin/audit?kind=secret").status_code == 400


def test_scans_page_shows_changes_and_severities(admin_client: FlaskClient, fleet: Fleet) -> None:
    html = admin_client.get("/admin/scans?cluster=prod-eu").get_data(as_text=True)
    assert '<th class="num">New</th><th class="num">Resolved</th>' in html
    with fleet.sessions() as session:
        first = session.scalar(
            select(ScanRun).where(ScanRun.cluster_id == "prod-eu").order_by(ScanRun.id)
        )
    row = html.split(f"<td>{first.id}</td>")[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num[^"]*">(\d*)</td>', row)
    new, resolved, open_, exempted, critical = cells[:5]
    counts = first.counts
    assert int(new) == counts["new"] and critical == str(counts["severity_critical"])
    assert int(open_) == counts["new"] + counts["open"]
    assert resolved == str(counts["resolved"] or "") and exempted == str(counts["exempted"] or "")
    assert "staging-us" not in html.split("<tbody>")[1]


def test_posture_scores_per_framework_follow_their_definition(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    from store.models import KubeObject  # noqa: PLC0415

    catalogue = rule_catalogue()
    with fleet.sessions() as session:
        objects = session.scalars(
            select(KubeObject).where(
                KubeObject.cluster_id == "prod-eu", KubeObject.deleted_at.is_(None)
            )
        ).all()
        open_findings = session.scalars(
            select(Finding).where(
                Finding.cluster_id == "prod-eu", Finding.status.in_(("new", "open"))
            )
        ).all()

    def expected(in_framework: object) -> int:
        failing = {
            (f.kind, f.namespace or "", f.name)
            for f in open_findings
            if in_framework(catalogue[f.rule_id])  # type: ignore[operator]
        }
        return (len(objects) - len(failing)) * 100 // len(objects)

    cis5 = expected(lambda info: any(c.startswith("5.") for c in info["cis"]))
    baseline = expected(lambda info: any(p.startswith("baseline") for p in info["pss"]))
    restricted = expected(lambda info: bool(info["pss"]))
    overall = expected(lambda _info: True)
    assert overall < 100  # the privileged web Deployment fails
    _wire_catalogue(fleet)
    html = admin_client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    for key, value in (
        ("all", overall),
        ("cis-5", cis5),
        ("pss-baseline", baseline),
        ("pss-restricted", restricted),
    ):
        assert re.search(rf'class="num score-{key}"[^>]*>{value}%</td>', html), key
    assert "Posture score:</strong> Share of the cluster&#39;s current objects" in html


def test_findings_link_to_the_change_that_introduced_them(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    from store.models import KubeObject  # noqa: PLC0415

    with fleet.sessions() as session:
        web = session.scalar(
            select(KubeObject).where(KubeObject.name == "web", KubeObject.cluster_id == "prod-eu")
        )
    page = admin_client.get(f"/admin/clusters/prod-eu/objects/{web.id}").get_data(as_text=True)
    table = page.split('<table class="object-findings">')[1].split("</table>")[0]
    privileged = next(row for row in table.split("<tr") if "KM-101" in row)
    link = re.search(r'<a class="first-seen" href="([^"]+)">the change of ', privileged)
    assert link is not None
    # ... by this field:
    assert "<code>spec.template.spec.containers[0].securityContext.privileged</code>" in privileged
    diff = admin_client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    # Versions are labelled by time, and the change says what it introduced.
    assert re.search(r"<h1>Changes to Deployment shop/web <small>\d{4}-\d\d-\d\d \d\d:", diff)
    introduced = diff.split('<ul class="introduced">')[1].split("</ul>")[0]
    assert "KM-101" in introduced
    assert '<span class="add">+          privileged: true</span>' in diff
    # Back from the first to the second version: the same pair, in time order.
    versions = re.findall(r'name="a" value="(\d+)"', page)
    reverse = f"/admin/clusters/prod-eu/objects/{web.id}/diff?a={versions[1]}&b={versions[0]}"
    assert "KM-101" in admin_client.get(reverse).get_data(as_text=True).split("<h2>Manifest")[0]


def test_search_values_link_to_the_matching_resources(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    image_path = "$.spec.template.spec.containers[*].image"
    distinct = admin_client.get(
        "/admin/search", query_string={"path": image_path, "distinct": "1"}
    ).get_data(as_text=True)
    link = re.search(
        r'<a class="value-link" href="([^"]+)"><code>(?:&#34;|")registry.example/api:2', distinct
    ).group(1)
    matching = admin_client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    table = matching.split('<table class="results">')[1]
    assert "2 matches" in matching
    assert table.count('class="resource-link"') == 2  # prod-eu shop/api and staging-us qa/api
    assert "registry.example/web" not in table
    resource = re.search(r'<a class="resource-link" href="([^"]+)">api</a>', table).group(1)
    answer = admin_client.get(resource.replace("&amp;", "&"))
    assert answer.status_code == 302
    page = admin_client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "<h1>Deployment" in page and "/api" in page.split("</h1>")[0]
    bad = admin_client.get("/admin/search", query_string={"path": image_path, "value": "{nope"})
    assert bad.status_code == 400
    missing = admin_client.get("/admin/clusters/prod-eu/find?ref=v1|Secret|shop|nothing")
    assert missing.status_code == 404


def test_diff_with_the_rules_wired_in_names_exactly_what_the_change_introduced(
    admin_client: FlaskClient, fleet: Fleet
) -> None:
    from cli.wsgi import object_violations  # noqa: PLC0415
    from rules import Engine, default_rules  # noqa: PLC0415
    from store.models import KubeObject  # noqa: PLC0415

    extras = fleet.app.extensions["k8smon.ingest"].extras
    extras["object_violations"] = object_violations(Engine(default_rules()))
    with fleet.sessions() as session:
        web = session.scalar(
            select(KubeObject).where(KubeObject.name == "web", KubeObject.cluster_id == "prod-eu")
        )
    page = admin_client.get(f"/admin/clusters/prod-eu/objects/{web.id}").get_data(as_text=True)
    old, new = re.findall(r'name="a" value="(\d+)"', page)
    diff = admin_client.get(
        f"/admin/clusters/prod-eu/objects/{web.id}/diff?a={old}&b={new}"
    ).get_data(as_text=True)
    assert "The rules evaluated on both versions" in diff
    introduced = diff.split('<ul class="introduced">')[1].split("</ul>")[0]
    assert "KM-101" in introduced and "securityContext.privileged" in introduced
    assert "status-new" in introduced  # the tracked finding's status
    assert "KM-106" not in introduced  # runs as root in both versions: not this change
    back = admin_client.get(
        f"/admin/clusters/prod-eu/objects/{web.id}/diff?a={new}&b={old}"
    ).get_data(as_text=True)
    assert "KM-101" in back.split('<ul class="introduced">')[1].split("</ul>")[0]


def test_every_page_answers_on_both_engines(any_db_session: object, test_settings: object) -> None:
    """The embedded default (SQLite) serves the same pages as PostgreSQL."""
    from tests.web.conftest import sign_in  # noqa: PLC0415
    from tests.web.fleet import ADMIN_PASSWORD, build_fleet  # noqa: PLC0415

    fleet = build_fleet(any_db_session, test_settings)  # type: ignore[arg-type]
    _wire_catalogue(fleet)
    fleet.scan("prod-eu")
    client = fleet.app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    with fleet.sessions() as session:
        from store.models import KubeObject  # noqa: PLC0415

        web = session.scalar(select(KubeObject.id).where(KubeObject.name == "web"))
    for url in (
        "/admin/",
        "/admin/findings?severity=high&label=env%3Dprod&category=pod-security",
        "/admin/clusters/prod-eu?status=all&page=1",
        f"/admin/clusters/prod-eu/objects/{web}",
        "/admin/rules/KM-101",
        "/admin/exemptions",
        "/admin/scans",
        "/admin/audit?kind=all",
        "/admin/search?path=%24.metadata.name",
        "/admin/images",
        "/admin/clusters/prod-eu/timeline",
    ):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code)
    fleet_page = client.get("/admin/").get_data(as_text=True)
    assert fleet_page.count('<circle class="point"') == 14 * 5
    cluster = client.get("/admin/clusters/prod-eu").get_data(as_text=True)
    assert 'class="num score-all"' in cluster and 'id="rule-KM-101"' in cluster
