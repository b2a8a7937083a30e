"""The search page back in time, in a real headless Chromium: the operator types a past time
into the form and sees the versions current then with their validity windows; the pager and
the value links keep the time; a bad time is a 400 page that names the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from settings import Settings
from tests.support.factories import make_cluster
from tests.web.fleet import ADMIN_PASSWORD, build_fleet, live_server, push_history
from tests.web.test_browser import CHROMIUM, browser_page  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
)

IMAGE = "$.spec.template.spec.containers[*].image"


def test_search_back_in_time_in_a_real_browser(
    db_session: Session,
    test_settings: Settings,
    browser_page: Page,  # noqa: F811 - the imported fixture
) -> None:
    page = browser_page
    fleet = build_fleet(db_session, test_settings)
    with fleet.sessions() as session:
        make_cluster(session, "archive")
        when = push_history(session, "archive", now=datetime.now(UTC))
        session.commit()
    moment = (when.first + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with live_server(fleet.app) as base:
        page.goto(f"{base}/admin/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Fleet")

        page.goto(f"{base}/admin/search")
        page.fill("input[name=path]", IMAGE)
        page.fill("input[name=at]", moment)
        page.click("form.search button[type=submit]")
        expect(page.locator("h1")).to_contain_text("back in time")
        rows = page.locator("table.results tbody tr")
        expect(rows).to_have_count(2)  # the seeded fleet did not exist yet
        web = rows.filter(has_text="history/web:1")
        expect(web).to_contain_text("archive")
        expect(web.locator("td.valid-from")).to_have_text(
            when.first.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
        )
        expect(web.locator("td.valid-until")).to_have_text(
            when.second.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
        )
        expect(rows.filter(has_text="history/job:1")).to_have_count(1)
        expect(page.locator("input[name=at]")).to_have_value(moment)

        # A value link narrows to that value at the same time.
        web.locator("a.value-link").click()
        expect(page.locator("p.narrowed")).to_contain_text("history/web:1")
        expect(page.locator("table.results tbody tr")).to_have_count(1)
        expect(page.locator("input[name=at]")).to_have_value(moment)

        # Between the second and the third push: web:2 (still current) and the deleted job.
        page.fill("input[name=at]", "")
        starts = page.locator("input[name=between]")
        starts.nth(0).fill((when.second + timedelta(hours=1)).isoformat())
        starts.nth(1).fill((when.third + timedelta(hours=1)).isoformat())
        page.fill("input[name=path]", IMAGE)
        page.click("form.search button[type=submit]")
        rows = page.locator("table.results tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text="history/web:2").locator("td.valid-until")).to_have_text(
            "still current"
        )
        expect(rows.filter(has_text="history/job:1").locator("td.valid-until")).to_have_text(
            when.third.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
        )

        # A time the form cannot read: a 400 page naming the field.
        page.goto(f"{base}/admin/search")
        page.fill("input[name=path]", IMAGE)
        page.fill("input[name=at]", "last tuesday")
        with page.expect_response(lambda r: "/admin/search?" in r.url) as answer:
            page.click("form.search button[type=submit]")
        assert answer.value.status == 400
        expect(page.locator("p.flash.error")).to_contain_text(
            "at: 'last tuesday' is not an ISO 8601 time"
        )
