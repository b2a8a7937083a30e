"""The Deliveries page in a real headless Chromium: a report whose receiver stayed down past the
retry window is listed as a dead letter with its last error (channel text escaped), an admin
re-sends it with the page's CSRF-protected button, and the receiver, back up, gets it once with
the delivery's idempotency key; the re-send is in the audit log."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from settings import Settings
from store.models import Delivery
from store.snapshots import apply_pending, stage_snapshot
from store.types import utcnow
from tests.fakes.receiver import running_receiver
from tests.support.factories import make_cluster
from tests.support.manifests import full_envelope
from tests.web.fleet import ADMIN_PASSWORD, build_fleet, live_server
from tests.web.test_browser import browser_page, pytestmark
from tests.workers.workloads import privileged
from workers.services.delivery import deliver_due

__all__ = ["browser_page", "pytestmark"]


def test_a_dead_letter_is_shown_and_resent_from_the_admin_page(
    db_session: Session, test_settings: Settings, browser_page: Page
) -> None:
    page = browser_page
    settings = test_settings.replace(webhook_allowed_networks=("127.0.0.1/32",))
    fleet = build_fleet(db_session, settings)
    with running_receiver() as receiver:
        receiver.stop()  # down through every attempt
        hook = f"{receiver.url}/hooks/<i>sec</i>"
        with fleet.sessions() as session:
            make_cluster(session, "hooked", team="payments", channel=hook)
            stage_snapshot(session, "hooked", envelope=full_envelope([privileged("api")]))
            apply_pending(session, "hooked")
            session.commit()
        fleet.scan("hooked")
        result = deliver_due(fleet.sessions, settings=settings, now=utcnow() + timedelta(hours=25))
        assert result["dead_lettered"] >= 1
        delivery = db_session.scalars(select(Delivery).where(Delivery.cluster_id == "hooked")).one()
        assert delivery.state == "dead"
        receiver.start()  # back, on the same port

        with live_server(fleet.app) as base:
            page.goto(f"{base}/admin/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", ADMIN_PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Deliveries")
            expect(page.locator("h1")).to_contain_text("Deliveries")
            row = page.locator(f"table.dead tr#delivery-{delivery.id}")
            expect(row).to_contain_text("hooked")
            expect(row).to_contain_text("Connection refused")
            expect(row.locator("code")).to_have_text(hook)  # shown as text, not markup
            expect(row.locator("i")).to_have_count(0)

            row.locator("button:has-text('Re-send')").click()
            expect(page.locator("p.flash.ok")).to_contain_text(
                f"Delivery {delivery.id} is being re-sent"
            )
            expect(page.locator(f"table.dead tr#delivery-{delivery.id}")).to_have_count(0)
            assert [r.key for r in receiver.requests] == [delivery.idempotency_key]
            db_session.expire_all()
            assert db_session.get(Delivery, delivery.id).state == "sent"

            page.click("nav >> text=Audit log")
            expect(page.locator("table.audit")).to_contain_text("delivery.resend")
