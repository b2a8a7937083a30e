"""The admin pages in a real headless Chromium (Debian's `chromium`, driven by Playwright):
sign in, fleet → cluster → resource → diff, create an exemption and see it applied after a
rescan, and a form posted without its CSRF token refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy.orm import Session

from contracts.advisories import parse_advisories
from contracts.tasks import EVALUATE_FLEET
from settings import Settings
from store.advisories import load_advisories
from tests.support.factories import make_failed_scan
from tests.web.fleet import ADMIN_PASSWORD, VIEWER_PASSWORD, build_fleet, live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium; "
    ".ci/run installs it)",
)


@pytest.fixture
def browser_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def test_operator_flow_in_a_real_browser(
    db_session: Session, test_settings: Settings, browser_page: Page
) -> None:
    page = browser_page
    fleet = build_fleet(db_session, test_settings)
    with live_server(fleet.app) as base:
        # Sign in (redirected to the sign-in page first).
        page.goto(f"{base}/admin/")
        expect(page).to_have_url(re.compile(r"/admin/login"))
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Fleet")
        expect(page.locator("tr", has_text="prod-eu")).to_contain_text("healthy")

        # Fleet → cluster → resource (offending path highlighted) → diff.
        page.click("a[href='/admin/clusters/prod-eu']")
        expect(page.locator("h1")).to_contain_text("prod-eu")
        expect(page.locator("section.rule-group", has_text="KM-101")).to_be_visible()
        page.locator("section.rule-group", has_text="KM-101").locator(
            "a.resource-link"
        ).first.click()
        expect(page.locator("h1")).to_contain_text("Deployment shop/web")
        offending = page.locator("pre.manifest .offending")
        expect(offending.filter(has_text="privileged: true")).to_have_count(1)
        page.click("button:has-text('Compare versions')")
        expect(page.locator("h1")).to_contain_text("Changes to Deployment shop/web")
        expect(page.locator("pre.diff .add", has_text="privileged: true")).to_have_count(1)
        expect(page.locator("pre.diff .del", has_text="web:1.0")).to_have_count(1)

        # A form posted without its CSRF token is refused.
        page.goto(f"{base}/admin/exemptions")
        page.eval_on_selector("form.exemption-form input[name=csrf_token]", "e => e.remove()")
        page.fill("input[name=rules]", "KM-101")
        page.fill("input[name=reason]", "forged")
        page.fill("input[name=expires]", "2099-12-31")
        page.click("button:has-text('Create exemption')")
        expect(page.locator("h1")).to_contain_text("400")
        expect(page.locator("p.detail")).to_contain_text("CSRF token is missing or wrong")

        # Create an exemption for real, rescan, and see the finding exempted.
        page.goto(f"{base}/admin/exemptions")
        page.fill("input[name=rules]", "KM-101")
        page.select_option("select[name=cluster]", "prod-eu")
        page.fill("input[name=kind]", "Deployment")
        page.fill("input[name=name]", "web")
        page.fill("input[name=reason]", "vendor agent needs host access")
        page.fill("input[name=expires]", "2099-12-31")
        page.click("button:has-text('Create exemption')")
        expect(page.locator("p.flash.ok")).to_contain_text("applies from the next scan")
        expect(page.locator("table.exemptions tr.active")).to_contain_text("vendor agent")
        page.goto(f"{base}/admin/clusters/prod-eu")
        page.click("button:has-text('Rescan now')")
        expect(page.locator("p.flash.ok")).to_contain_text("Rescan of prod-eu queued")
        exempted = page.locator("section.rule-group", has_text="KM-101")
        expect(exempted.locator("span.badge.status-exempted")).to_have_count(1)

        # The change is in the audit log.
        page.click("nav >> text=Audit log")
        expect(page.locator("table.audit")).to_contain_text("exemption.create")
        expect(page.locator("table.audit")).to_contain_text("cluster.rescan")


def test_images_page_in_a_real_browser(
    db_session: Session, test_settings: Settings, browser_page: Page
) -> None:
    """The images page: the inventory with links to each workload, the loaded advisories
    (their untrusted text escaped), and the advisory's findings one click away."""
    page = browser_page
    fleet = build_fleet(db_session, test_settings)
    hostile = '<img src=x onerror="document.title=1">web advisory'
    record = {
        "id": "TEST-PAGE-1",
        "severity": "high",
        "summary": hostile,
        "url": "https://advisories.example/TEST-PAGE-1",
        "affected": [{"repository": "registry.example/web", "introduced": "1.0", "fixed": "1.2"}],
    }
    with fleet.sessions() as session:
        load_advisories(session, parse_advisories(record), loaded_by="test")
        session.commit()
    fleet.dispatcher.run(EVALUATE_FLEET)
    with live_server(fleet.app) as base:
        page.goto(f"{base}/admin/login")
        page.fill("input[name=username]", "victor")
        page.fill("input[name=password]", VIEWER_PASSWORD)
        page.click("button[type=submit]")
        page.click("nav >> text=Images")
        expect(page.locator("h1")).to_contain_text("Images")
        web = page.locator("table.images tr", has_text="Deployment/web")
        expect(web).to_contain_text("registry.example/web")
        expect(web).to_contain_text("1.1")
        expect(web).to_contain_text("prod-eu")
        expect(page.locator("table.images tbody tr")).to_have_count(3)
        advisory = page.locator("table.advisories tr", has_text="TEST-PAGE-1")
        expect(advisory).to_contain_text(hostile)  # shown as text, not markup
        expect(page.locator("table.advisories img")).to_have_count(0)
        expect(advisory).to_contain_text("registry.example/web ≥ 1.0 < 1.2")

        page.fill("input[name=repository]", "*/api")
        page.click("button:has-text('Filter')")
        expect(page.locator("table.images tbody tr")).to_have_count(2)

        page.click("text=KM-622 advisories")
        finding = page.locator("tr", has_text="TEST-PAGE-1")
        expect(finding.first).to_contain_text("web")
        page.goto(f"{base}/admin/images?cluster=prod-eu&repository=*/web")
        page.click("table.images a:has-text('Deployment/web')")
        expect(page.locator("h1")).to_contain_text("Deployment shop/web")


def test_a_failed_scans_reason_in_a_real_browser(
    db_session: Session, test_settings: Settings, browser_page: Page
) -> None:
    page = browser_page
    fleet = build_fleet(db_session, test_settings)
    reason = "the cluster rules lost <img id=pwned src=x> (no task queued or running)"
    with fleet.sessions() as session:
        scan_id = make_failed_scan(session, "prod-eu", reason=reason)
    with live_server(fleet.app) as base:
        page.goto(f"{base}/admin/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Fleet")

        page.click("nav >> text=Scans")
        row = page.locator("table.scans tr.state-failed", has_text=str(scan_id))
        expect(row.locator(".failure-reason")).to_have_text(reason)
        page.click("a[href='/admin/clusters/prod-eu']")
        row = page.locator("tr.state-failed", has_text="failed")
        expect(row.locator(".failure-reason")).to_have_text(reason)
        expect(page.locator("#pwned")).to_have_count(0)  # the text stayed text
