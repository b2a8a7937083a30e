"""The Deliveries page: dead letters (with their reason and last error) and retrying deliveries;
an admin re-sends a dead letter (audited; the delivery task is queued at once)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from contracts.states import DeliveryState
from contracts.tasks import DELIVER_REPORTS
from ingest.context import ctx
from ingest.dispatch import enqueue_after_commit
from ingest.web.security import admin_required, current_user, login_required
from reports.channels import describe
from store.audit import record_action
from store.deliveries import NotDeadLetter, list_deliveries, resend
from store.models import Delivery

SHOWN = 200  # of each list, newest first
SOURCE = "admin-pages"


@login_required
def deliveries() -> str:
    with ctx().sessions() as db:
        dead = list_deliveries(db, state=DeliveryState.DEAD, limit=SHOWN)
        retrying = db.scalars(
            select(Delivery)
            .where(Delivery.state == DeliveryState.PENDING, Delivery.attempts > 0)
            .order_by(Delivery.next_attempt_at)
            .limit(SHOWN)
        ).all()
        return render_template(
            "web/deliveries.html",
            dead=dead,
            retrying=retrying,
            window_hours=ctx().settings.delivery_retry_hours,
        )


@admin_required
def delivery_resend(delivery_id: int) -> Response:
    with ctx().sessions() as db:
        try:
            delivery = resend(db, delivery_id)
        except LookupError:
            abort(404, description=f"no delivery {delivery_id}")
        except NotDeadLetter as refused:
            flash(str(refused), "error")
            return redirect(url_for("web.deliveries"))
        record_action(
            db,
            actor=current_user().username,
            action="delivery.resend",
            target=f"delivery/{delivery_id}",
            details={"cluster_id": delivery.cluster_id, "channel": describe(delivery.channel)},
            source=SOURCE,
        )
        db.commit()
    if enqueue_after_commit(ctx().dispatch, DELIVER_REPORTS, kwargs={}):
        flash(f"Delivery {delivery_id} is being re-sent.", "ok")
    else:
        flash(
            f"Delivery {delivery_id} will be re-sent by the next scheduled delivery run: the "
            "task queue is unavailable.",
            "error",
        )
    return redirect(url_for("web.deliveries"))
