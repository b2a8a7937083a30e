"""The fleet rules on the server: every cluster's running images (`store.images.image_uses`)
and the loaded advisories, evaluated at once, their findings reconciled cluster by cluster.

Runs when an advisory is loaded or deleted (so its findings appear at once, not at the next
scan) and after every fleet scan. Only the fleet rules' findings are reconciled here; a
cluster scan leaves them alone (except on objects that are gone). A fleet rule that raises
resolves nothing of its own.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.images import parse_image
from contracts.states import FindingStatus
from rules import Result
from rules.fleet import FleetContext, RunningImage
from store.advisories import loaded_advisories
from store.exemptions import list_exemptions
from store.findings import KnownFinding, reconcile_findings
from store.images import ImageUse, image_uses
from store.models import Cluster, Finding
from store.types import utcnow
from workers.engine import EngineHandle
from workers.services.exemptions import stored_exemptions
from workers.services.scanning import Candidate, observed_finding

log = logging.getLogger("k8smon.workers")


@dataclass(slots=True)
class FleetOutcome:
    """What one fleet evaluation saw and changed (summed over clusters)."""

    images: int
    advisories: int
    clusters: int
    duration_s: float
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def running_image(use: ImageUse) -> RunningImage:
    """A stored inventory row as the fleet rules see it."""
    return RunningImage(
        cluster=use.cluster_id,
        workload=use.workload,
        container=use.container,
        path=use.path,
        image=parse_image(use.image),
        digests=use.digests,
        since=use.since,
    )


def _clusters_with_fleet_findings(session: Session, rule_ids: frozenset[str]) -> set[str]:
    return set(
        session.scalars(
            select(Finding.cluster_id)
            .where(
                Finding.rule_id.in_(sorted(rule_ids)),
                Finding.status.in_(FindingStatus.active()),
            )
            .distinct()
        )
    )


def evaluate_fleet(
    session: Session,
    *,
    rules: EngineHandle,
    timeout_seconds: float,
    now: datetime | None = None,
) -> FleetOutcome:
    """Evaluate the fleet rules on the whole fleet and reconcile their findings."""
    started = time.monotonic()
    at = now or utcnow()
    active = list(session.scalars(select(Cluster.id).where(Cluster.status == "active")))
    # A disabled cluster's last state is not what runs: it neither counts nor gets findings.
    uses = (
        image_uses(session, timeout_seconds=timeout_seconds, cluster_ids=active) if active else []
    )
    advisories = loaded_advisories(session)
    context = FleetContext(
        images=tuple(running_image(u) for u in uses),
        advisories=tuple(advisories),
        drift=rules.engine.config.image_drift,
        now=at,
    )
    by_cluster: dict[str, list[Result]] = defaultdict(list)
    crashed: set[str] = set()
    errors: list[str] = []
    for cluster_id, result in rules.engine.evaluate_fleet(context):
        if result.is_error:
            crashed.add(result.rule_id)
            errors.append(result.message)
            log.error("fleet rule %s failed: %s", result.rule_id, result.message)
        elif cluster_id is not None:
            by_cluster[cluster_id].append(result)
    owned = rules.fleet_rule_ids - crashed
    known = set(active)  # a disabled cluster's fleet findings stay as they were
    clusters = (set(by_cluster) | _clusters_with_fleet_findings(session, owned)) & known
    totals: dict[str, int] = defaultdict(int)

    def evaluated(finding: KnownFinding) -> bool:
        return finding.rule_id in owned

    for cluster_id in sorted(clusters):
        results = by_cluster.get(cluster_id, [])
        configured = rules.apply_config(
            results,
            cluster_id=cluster_id,
            facts={},
            stored=stored_exemptions(list_exemptions(session, cluster_id=cluster_id)),
            now=at,
        )
        observed = [
            observed_finding(Candidate(result, None, "fleet"), result) for result in configured
        ]
        outcome = reconcile_findings(
            session, cluster_id, scan_id=None, observed=observed, evaluated=evaluated, at=at
        )
        for name, value in outcome.as_counts().items():
            totals[name] += value
    return FleetOutcome(
        images=len(uses),
        advisories=len(advisories),
        clusters=len(clusters),
        duration_s=round(time.monotonic() - started, 3),
        counts=dict(totals),
        errors=errors,
    )
