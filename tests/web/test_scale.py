"""The admin pages at fleet scale: 200 clusters, 100,000 findings (bench-sized data).

Every page answers 200 with at most ~300 KB of HTML, lists worst first, pages by 100 rows,
and its filters narrow the list. Sizes and server times are printed (run with `-s` to read
them; speed is reported, never asserted).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cli.wsgi import rule_catalogue
from settings import Settings
from store.models import Finding, KubeObject
from tests.web.bulk import BulkFleet, fill_bulk_fleet
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, Fleet, build_fleet

MAX_PAGE_BYTES = 300 * 1024


@pytest.fixture
def big(db_session: Session, test_settings: Settings) -> Iterator[tuple[Fleet, BulkFleet]]:
    fleet = build_fleet(db_session, test_settings)
    fleet.app.extensions["k8smon.ingest"].extras["rule_info"] = rule_catalogue().get
    with fleet.sessions() as session:
        bulk = fill_bulk_fleet(session)
        session.commit()
    yield fleet, bulk


@pytest.fixture
def big_client(big: tuple[Fleet, BulkFleet]) -> FlaskClient:
    client = big[0].app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    return client


def _get(client: FlaskClient, url: str, figures: dict[str, tuple[int, float]]) -> str:
    client.get(url)  # warm: the figure is the steady state
    started = time.perf_counter()
    answer = client.get(url)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (url, answer.status_code)
    figures[url] = (len(answer.data), elapsed)
    assert len(answer.data) <= MAX_PAGE_BYTES, (url, len(answer.data))
    return answer.get_data(as_text=True)


def _finding_rows(html: str) -> int:
    """Rows of the paged findings list (below its heading)."""
    return len(re.findall(r'<tr class="status-', html.split('id="findings"')[1]))


def test_every_page_stays_small_and_worst_first_at_fleet_scale(
    big: tuple[Fleet, BulkFleet], big_client: FlaskClient
) -> None:
    fleet, bulk = big
    with fleet.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Finding))
    assert total >= bulk.findings
    figures: dict[str, tuple[int, float]] = {}
    client = big_client

    html = _get(client, "/admin/", figures)
    assert f"{bulk.clusters + 2} clusters" in html
    findings = _get(client, "/admin/findings", figures)
    assert _finding_rows(findings) == 100
    statuses = re.findall(r'<tr class="status-(\w+)"', findings)
    assert "exempted" not in statuses[:50]  # open first
    severities = re.findall(r'<td><span class="badge sev-(\w+)">', findings)
    assert severities[0] == "critical"
    page2 = _get(client, "/admin/findings?page=2", figures)
    assert _finding_rows(page2) == 100 and "101 to 200 of" in page2

    cluster = _get(client, "/admin/clusters/bench-007", figures)
    assert _finding_rows(cluster) == 100
    top = cluster.split('id="findings"')[0]
    assert "Rules, worst first" in top and "last scan:" in top
    narrowed = _get(
        client, "/admin/clusters/bench-007?severity=high&namespace=ns-3&status=open", figures
    )
    rows = re.findall(
        r'<tr class="status-(\w+)">\s*<td>.*?</td>\s*<td><span class="badge sev-(\w+)"',
        narrowed,
        flags=re.S,
    )
    assert 0 < len(rows) < 100
    assert {sev for _status, sev in rows} <= {"critical", "high"}
    assert {status for status, _sev in rows} <= {"new", "open"}

    with fleet.sessions() as session:
        bench_object = session.scalar(
            select(KubeObject.id).where(KubeObject.cluster_id == "bench-007").limit(1)
        )
    for url in (
        f"/admin/clusters/bench-007/objects/{bench_object}",
        "/admin/findings?severity=critical&status=all",
        "/admin/findings?team=team-3&label=env%3Dprod",
        "/admin/findings?category=pod-security&kind=DaemonSet",
        "/admin/clusters/bench-042?page=3",
        "/admin/rules/KM-101",
        "/admin/rules/KM-101?page=2",
        "/admin/scans",
        "/admin/exemptions",
        "/admin/audit",
        "/admin/search?path=%24.spec.template.spec.containers%5B%2A%5D.image&distinct=1",
        "/admin/search?path=%24.metadata.name",
    ):
        _get(client, url, figures)

    print("\nadmin pages at 200 clusters / 100,000 findings (bytes, seconds):")
    for url, (size, seconds) in figures.items():
        print(f"  {size / 1024:7.1f} KiB  {seconds * 1000:7.1f} ms  {url}")


def test_bad_filter_values_are_a_clear_400(big_client: FlaskClient) -> None:
    for url, field in (
        ("/admin/findings?severity=urgent", "severity"),
        ("/admin/findings?status=gone", "status"),
        ("/admin/findings?page=0", "page"),
        ("/admin/clusters/bench-001?label=not-a-label", "label"),
    ):
        answer = big_client.get(url)
        assert answer.status_code == 400, url
        assert f"{field}:" in answer.get_data(as_text=True)


def test_pages_follow_one_worst_first_order_without_gaps(big: tuple[Fleet, BulkFleet]) -> None:
    from ingest.web.filters import SEVERITIES, FindingFilter  # noqa: PLC0415
    from ingest.web.queries import findings_page  # noqa: PLC0415

    fleet, _bulk = big
    with fleet.sessions() as session:
        rows = session.execute(
            select(
                Finding.id,
                Finding.status,
                Finding.severity,
                Finding.rule_id,
                Finding.namespace,
                Finding.kind,
                Finding.name,
            ).where(
                Finding.cluster_id == "bench-007",
                Finding.status.in_(("new", "open", "exempted")),
            )
        ).all()
        sizes: dict[str, int] = {}
        for row in rows:
            sizes[row.rule_id] = sizes.get(row.rule_id, 0) + 1
        expected = [
            row.id
            for row in sorted(
                rows,
                key=lambda r: (
                    r.status == "exempted",
                    SEVERITIES.index(r.severity),
                    -sizes[r.rule_id],
                    r.rule_id,
                    r.namespace or "",
                    r.kind,
                    r.name,
                    r.id,
                ),
            )
        ]
        listed: list[int] = []
        page = 1
        while True:
            got = findings_page(
                session, FindingFilter.from_args({"page": str(page)}, cluster="bench-007")
            )
            assert got.total == len(rows)
            listed += [r.id for r in got.rows]
            if page >= got.pages:
                break
            page += 1
    assert page == 5 and len(rows) > 400
    assert listed == expected
