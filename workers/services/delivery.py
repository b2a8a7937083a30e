"""Deliver scan reports: an HTML file per cluster, then each due delivery, one commit per answer.

A delivery's report is bound when its scan finishes (`report_content`, called by the scan's
finalize step), so a message sent later, or retried, still describes that scan. Sending goes
through the channel registry (reports.channels) with the delivery's idempotency key; each
answer is committed before the next message is sent (store.deliveries explains the claim).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from contracts.states import DeliveryState, FindingStatus
from reports.build import build_cluster_report
from reports.channels import DeliveryError, Outbound, deliver, describe
from reports.html import write_html
from reports.model import ClusterReport
from reports.policyreport import cluster_policy_reports, write_policy_reports
from settings import Settings
from store.db import unit_of_work
from store.deliveries import Claimed, RetryPolicy, claim, due_ids, mark_failed, mark_sent
from store.finding_rows import finding_rows
from store.findings import ACTIVE_STATUSES
from store.models import ScanRun

log = logging.getLogger("k8smon.workers")

BATCH = 100  # deliveries one task run attempts at most (the next run takes the rest)


def html_report_dir(settings: Settings) -> Path:
    return settings.instance_path / "reports"


def write_cluster_html(
    session: Session, *, settings: Settings, scan_id: int, now: datetime | None = None
) -> Path | None:
    """Write the cluster's HTML report as the scan left it, and its PolicyReports (stamped
    `now`, by default the time of writing): both of one read of its findings (the active
    ones and those the scan resolved) as plain rows (`store.finding_rows`)."""
    run = session.get(ScanRun, scan_id)
    if run is None:
        return None
    findings = finding_rows(session, run.cluster_id, resolved_in_scan=run.id)
    report = build_cluster_report(
        session,
        run.cluster_id,
        public_url=settings.public_url,
        scan_id=scan_id,
        findings=findings,
    )
    directory = html_report_dir(settings)
    active = [f for f in findings if f.status in ACTIVE_STATUSES]
    write_policy_reports(
        cluster_policy_reports(session, run.cluster_id, now=now, active=active),
        directory / f"{run.cluster_id}.policyreports.json",
    )
    return write_html(report, directory)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        backoff=timedelta(seconds=settings.delivery_backoff_seconds),
        backoff_cap=timedelta(seconds=settings.delivery_backoff_cap_seconds),
        window=timedelta(hours=settings.delivery_retry_hours),
    )


def report_content(
    session: Session, *, cluster_id: str, scan_id: int, public_url: str
) -> dict[str, Any]:
    """What a delivery of this scan will say, as it stands now: the news (new and resolved)
    and the counts, without the open and exempted lists the channels do not send (so only
    the new findings and those the scan resolved are read, not every finding of the
    cluster: this runs in the scan's finalize)."""
    news = finding_rows(
        session, cluster_id, statuses=(FindingStatus.NEW,), resolved_in_scan=scan_id
    )
    report = build_cluster_report(
        session, cluster_id, public_url=public_url, scan_id=scan_id, findings=news
    )
    return replace(report, rules=(), exempted=()).to_dict()


def _report(session: Session, claimed: Claimed, *, settings: Settings) -> ClusterReport:
    if claimed.content is not None:
        return ClusterReport.from_dict(dict(claimed.content))
    # A delivery created before contents were stored: built now, as it used to be.
    return build_cluster_report(
        session, claimed.cluster_id, public_url=settings.public_url, scan_id=claimed.scan_run_id
    )


def deliver_due(
    sessions: sessionmaker[Session],
    *,
    settings: Settings,
    scan_id: int | None = None,
    now: datetime | None = None,
    outbound: Outbound | None = None,
) -> dict[str, Any]:
    """Attempt every due delivery (of one scan, or all). Each is claimed, sent and its answer
    committed on its own; failures are rescheduled or dead-lettered, never raised."""
    policy = retry_policy(settings)
    counts = {"sent": 0, "failed": 0, "dead_lettered": 0}
    with unit_of_work(sessions) as session:
        due = due_ids(session, now=now, scan_run_id=scan_id, limit=BATCH)
    for delivery_id in due:
        with unit_of_work(sessions) as session:
            claimed = claim(session, delivery_id, now=now)
            report = _report(session, claimed, settings=settings) if claimed else None
        if claimed is None or report is None:
            continue  # another worker has it
        try:
            deliver(
                claimed.channel,
                report,
                key=claimed.idempotency_key,
                settings=settings,
                outbound=outbound,
            )
        except Exception as problem:  # any failure is recorded and retried, never lost
            error = str(problem) if isinstance(problem, DeliveryError) else repr(problem)
            with unit_of_work(sessions) as session:
                state = mark_failed(session, delivery_id, error=error, policy=policy, at=now)
            counts["dead_lettered" if state == DeliveryState.DEAD else "failed"] += 1
            _log_failure(claimed, state=state, error=error, policy=policy)
        else:
            with unit_of_work(sessions) as session:
                mark_sent(session, delivery_id, at=now)
            counts["sent"] += 1
    return counts


def _log_failure(claimed: Claimed, *, state: str, error: str, policy: RetryPolicy) -> None:
    where = describe(claimed.channel)
    if state == DeliveryState.DEAD:
        # Error level: the log pipeline's alerts reach the operators by another channel.
        log.error(
            "delivery %s of scan %s (cluster %s) to %s dead-lettered after %s attempts over "
            "the %g h retry window: %s; re-send it from the admin pages once the receiver works",
            claimed.id,
            claimed.scan_run_id,
            claimed.cluster_id,
            where,
            claimed.attempt,
            policy.window.total_seconds() / 3600,
            error,
        )
    else:
        log.warning(
            "delivery %s (attempt %s) to %s failed, retried later: %s",
            claimed.id,
            claimed.attempt,
            where,
            error,
        )
