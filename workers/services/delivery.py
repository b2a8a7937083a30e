"""Deliver scan reports: an HTML file per cluster, then each channel (reports.channels), retried."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from reports.build import build_cluster_report
from reports.channels import DeliveryError, Outbound, deliver
from reports.html import write_html
from reports.model import ClusterReport
from reports.policyreport import cluster_policy_reports, write_policy_reports
from settings import Settings
from store.deliveries import due_deliveries, mark_failed, mark_sent
from store.models import ScanRun

log = logging.getLogger("k8smon.workers")


def html_report_dir(settings: Settings) -> Path:
    return settings.instance_path / "reports"


def write_cluster_html(session: Session, *, settings: Settings, scan_id: int) -> Path | None:
    run = session.get(ScanRun, scan_id)
    if run is None:
        return None
    report = build_cluster_report(
        session, run.cluster_id, public_url=settings.public_url, scan_id=scan_id
    )
    directory = html_report_dir(settings)
    write_policy_reports(
        cluster_policy_reports(session, run.cluster_id),
        directory / f"{run.cluster_id}.policyreports.json",
    )
    return write_html(report, directory)


def deliver_due(
    session: Session,
    *,
    settings: Settings,
    scan_id: int | None = None,
    now: datetime | None = None,
    outbound: Outbound | None = None,
) -> dict[str, Any]:
    """Attempt every due delivery (of one scan, or all); failures are rescheduled, not raised."""
    sent = failed = 0
    reports: dict[int | None, ClusterReport] = {}
    for delivery in due_deliveries(session, now=now):
        if scan_id is not None and delivery.scan_run_id != scan_id:
            continue
        if delivery.scan_run_id not in reports:
            reports[delivery.scan_run_id] = build_cluster_report(
                session,
                delivery.cluster_id,
                public_url=settings.public_url,
                scan_id=delivery.scan_run_id,
            )
        try:
            deliver(
                delivery.channel,
                reports[delivery.scan_run_id],
                settings=settings,
                outbound=outbound,
            )
        except DeliveryError as problem:
            mark_failed(session, delivery, error=str(problem), at=now)
            log.warning("delivery %s to %s failed: %s", delivery.id, delivery.channel, problem)
            failed += 1
        else:
            mark_sent(session, delivery, at=now)
            sent += 1
    return {"sent": sent, "failed": failed}
