"""Every admin page in a real headless Chromium with the bench-sized fleet (200 clusters,
100,000 findings): what a person looks for is where they look, and each page is
photographed.

Screenshots go to the test's temporary folder, or to the folder named by
`K8SMON_SCREENSHOTS` (`make screenshots` sets it to docs/screenshots).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from cli.wsgi import object_violations, rule_catalogue
from settings import Settings
from store.models import Finding, KubeObject
from tests.web.bulk import fill_bulk_fleet
from tests.web.fleet import ADMIN_PASSWORD, Fleet, build_fleet, live_server
from tests.web.test_browser import CHROMIUM, browser_page  # noqa: F401 - the fixture

VIEWPORT = {"width": 1440, "height": 900}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("K8SMON_SCREENSHOTS", "") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def big_fleet(db_session: Session, test_settings: Settings) -> Iterator[Fleet]:
    from rules import Engine, default_rules  # noqa: PLC0415 - the test is the composition root

    fleet = build_fleet(db_session, test_settings)
    extras = fleet.app.extensions["k8smon.ingest"].extras
    extras["rule_info"] = rule_catalogue().get
    extras["rule_doc"] = {rule.id: rule.meta.doc for rule in default_rules()}.get
    extras["object_violations"] = object_violations(Engine(default_rules()))
    with fleet.sessions() as session:
        fill_bulk_fleet(session)
        session.commit()
    yield fleet


def _snap(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=False)


def _above_the_fold(page: Page, selector: str) -> None:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    assert box["y"] + box["height"] <= VIEWPORT["height"], (selector, box)


def test_every_page_in_a_real_browser_at_fleet_scale(
    big_fleet: Fleet,
    browser_page: Page,  # noqa: F811
    shots: Path,
) -> None:
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.set_default_timeout(30_000)
    with live_server(big_fleet.app) as base:
        page.goto(f"{base}/admin/login")
        _snap(page, shots, "login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")

        # Fleet: worst cluster first, charts with one point per day and severity.
        expect(page.locator("h1")).to_contain_text("202 clusters")
        fleet_chart = page.locator("svg.chart.line").first
        expect(fleet_chart.locator("circle.point")).to_have_count(14 * 5)
        expect(page.locator("td.trend svg.trend-bars").first).to_be_visible()
        _snap(page, shots, "fleet")
        first_row_counts = page.locator("table.fleet tbody tr").first.locator("td.num")
        critical = first_row_counts.first.inner_text()
        assert int(critical) >= int(
            page.locator("table.fleet tbody tr").nth(5).locator("td.num").first.inner_text() or 0
        )
        # Every count is a link to the list it counts.
        page.locator("table.fleet tbody tr").first.locator("td.num a").first.click()
        expect(page.locator("nav.pager").first).to_contain_text(f"of {critical}")
        badges = page.locator("#findings ~ section.rule-group td span.badge[class*=sev-]")
        assert set(badges.all_inner_texts()) == {"critical"}

        # Cluster page: the critical finding above the fold; the filter narrows the list.
        page.goto(f"{base}/admin/clusters/bench-007")
        worst = page.locator("table.worst tr").first
        expect(worst.locator("span.badge")).to_have_text("critical")
        _above_the_fold(page, "table.worst tr")
        trend = page.locator("svg.chart.line")
        expect(trend.locator("circle.point")).to_have_count(30 * 5)  # 30 scans x 5 severities
        expect(page.locator("svg.chart.bars rect.bar")).to_have_count(30 * 2)
        _snap(page, shots, "cluster")
        before = page.locator("section.rule-group tbody tr").count()
        assert before == 100
        page.select_option("form.filters select[name=severity]", "critical")
        page.fill("form.filters input[name=namespace]", "ns-3")
        page.click("form.filters button[type=submit]")
        expect(page).to_have_url(re.compile(r"severity=critical"))
        rows = page.locator("section.rule-group tbody tr")
        after = rows.count()
        assert 0 < after < before
        assert set(rows.locator("td:nth-child(2) span.badge").all_inner_texts()) == {"critical"}
        assert set(rows.locator("td:nth-child(4)").all_inner_texts()) == {"ns-3"}
        _snap(page, shots, "cluster-filtered")

        # Fleet-wide findings, page 2 by its deep link.
        page.goto(f"{base}/admin/findings?severity=high&page=2")
        expect(page.locator("nav.pager").first).to_contain_text("101 to 200 of")
        _snap(page, shots, "findings")

        # Rule page: the Markdown docstring, rendered; references are links.
        page.goto(f"{base}/admin/rules/KM-101")
        expect(page.locator("section.rule-doc h2", has_text="Why is this bad?")).to_be_visible()
        expect(page.locator("section.rule-doc pre code").first).to_contain_text("privileged")
        _snap(page, shots, "rule")

        # Scans, audit log (changes vs reads, filtered), exemptions, search.
        page.goto(f"{base}/admin/scans")
        expect(page.locator("table.scans th", has_text="Resolved")).to_be_visible()
        _snap(page, shots, "scans")
        page.goto(f"{base}/admin/audit")
        expect(page.locator("nav.tabs a.current")).to_have_text("changes")
        changes_actions = set(page.locator("table.audit td:nth-child(3)").all_inner_texts())
        assert changes_actions and not changes_actions & {"search.run", "session.sign_in"}
        page.select_option("form.filters select[name=actor]", "bob")
        page.click("form.filters button[type=submit]")
        assert set(page.locator("table.audit td:nth-child(2)").all_inner_texts()) == {"bob"}
        _snap(page, shots, "audit")
        page.goto(f"{base}/admin/exemptions")
        expect(page.locator("table.exemptions tr.active").first).to_be_visible()
        _snap(page, shots, "exemptions")
        page.goto(f"{base}/admin/search?path=%24.spec.template.spec.containers%5B*%5D.image")
        page.locator("a.value-link").first.click()
        expect(page.locator("p.narrowed")).to_be_visible()
        _snap(page, shots, "search")

        # An unknown URL is a page too.
        page.goto(f"{base}/admin/no/such/page")
        expect(page.locator("h1")).to_contain_text("404")
        _snap(page, shots, "not-found")

        # Accept the risk from the finding, rescan, and see it exempted.
        page.goto(f"{base}/admin/clusters/prod-eu")
        page.locator("table.worst tr", has_text="KM-101").locator("a.accept").click()
        expect(page.locator("p.accepting")).to_contain_text("KM-101")
        expect(page.locator("input[name=name]")).to_have_value("web")
        expect(page.locator("select[name=cluster]")).to_have_value("prod-eu")
        page.fill("input[name=reason]", "vendor agent needs host access")
        page.fill("input[name=expires]", "2099-12-31")
        _snap(page, shots, "accept-risk")
        page.click("button:has-text('Create exemption')")
        expect(page.locator("p.flash.ok")).to_contain_text("applies from the next scan")
        page.goto(f"{base}/admin/clusters/prod-eu")
        page.click("button:has-text('Rescan now')")
        expect(page.locator("p.flash.ok")).to_contain_text("Rescan of prod-eu queued")
        exempted = page.locator("section.rule-group", has_text="KM-101")
        expect(exempted.locator("span.badge.status-exempted")).to_have_count(1)
        expect(page.locator("table.worst")).not_to_contain_text("KM-101")
        page.goto(f"{base}/admin/exemptions")
        covered = page.locator("table.exemptions tr", has_text="vendor agent")
        expect(covered.locator("td.num")).to_have_text("1")

        # Resource page: the finding links to the change that introduced it; the diff says so.
        with big_fleet.sessions() as session:
            web = session.scalar(
                select(KubeObject).where(
                    KubeObject.cluster_id == "prod-eu", KubeObject.name == "web"
                )
            )
            assert (
                session.scalar(
                    select(Finding.status).where(
                        Finding.cluster_id == "prod-eu", Finding.rule_id == "KM-101"
                    )
                )
                == "exempted"
            )
        page.goto(f"{base}/admin/clusters/prod-eu/objects/{web.id}")
        expect(page.locator("pre.manifest .offending").first).to_be_visible()
        _snap(page, shots, "resource")
        page.locator("table.object-findings tr", has_text="KM-101").locator("a.first-seen").click()
        expect(page.locator("ul.introduced")).to_contain_text("KM-101")
        _snap(page, shots, "diff")
