"""The timelines in a real headless Chromium: from the cluster page to its timeline, older
pages, the resource's timeline with the diff of the change that opened a finding folded open,
and on to the diff page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from settings import Settings
from tests.web.fleet import ADMIN_PASSWORD, build_fleet, live_server
from tests.web.test_browser import browser_page, pytestmark  # noqa: F401 - fixture, skip mark


def test_timelines_in_a_real_browser(
    db_session: Session,
    test_settings: Settings,
    browser_page: Page,  # noqa: F811
) -> None:
    page = browser_page
    fleet = build_fleet(db_session, test_settings)
    with live_server(fleet.app) as base:
        page.goto(f"{base}/admin/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Fleet")

        page.goto(f"{base}/admin/clusters/prod-eu")
        page.click("a.timeline-link")
        expect(page.locator("h1")).to_contain_text("Timeline of")
        expect(page.locator("li.event.scan")).to_have_count(1)
        expect(page.locator("li.event.finding_opened").first).to_be_visible()

        # Only scans and resources, two a page: the older link pages on.
        page.uncheck("input[name=types][value=findings]")
        page.click("button:has-text('Filter')")
        expect(page.locator("li.event.finding_opened")).to_have_count(0)
        page.goto(page.url + "&limit=2")
        expect(page.locator("li.event")).to_have_count(2)
        page.click("a[rel=next]")
        expect(page.locator("li.event").first).to_be_visible()
        assert "before=" in page.url

        # The resource's timeline: the finding on web opened by the change to version 2.
        page.goto(f"{base}/admin/clusters/prod-eu/timeline?types=findings")
        opened = page.locator(
            "li.event.finding_opened", has_text="securityContext.privileged"
        ).first
        opened.locator("a", has_text=re.compile(r"^Deployment shop/web$")).click()
        expect(page.locator("h1")).to_contain_text("Deployment shop/web")
        entry = page.locator(
            "#timeline li.event.finding_opened", has_text="securityContext.privileged"
        )
        expect(entry).to_contain_text("introduced by")
        diff = entry.locator("pre.diff .add", has_text="privileged: true")
        expect(diff).to_be_hidden()  # folded until asked
        entry.locator("summary").click()
        expect(diff).to_be_visible()
        entry.locator("a.change").click()
        expect(page.locator("h1")).to_contain_text("Changes to Deployment shop/web")
        expect(page.locator("pre.diff .add", has_text="privileged: true")).to_have_count(1)
