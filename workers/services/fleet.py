"""The fleet rules on the server: every cluster's running images (`store.images.image_uses`)
and the loaded advisories, evaluated at once, their findings reconciled cluster by cluster.

Runs when an advisory is loaded or deleted (so its findings appear at once, not at the next
scan) and after every fleet scan. Only the fleet rules' findings are reconciled here. A
cluster scan that a fleet scan did not start (a push's, a rescan of one cluster) evaluates
them for its own cluster through the same function (`workers.services.fleet_rules`); the
cluster scans a fleet scan starts leave them to this evaluation. A fleet rule that raises
resolves nothing of its own.

An evaluation whose inputs are those the last one judged (`store.fleet_state`: the active
clusters, the digest of each one's image uses, exemptions, advisories, the rules, the history)
before its results could change with time is skipped: the findings are already what it would
leave. Only an evaluation that left every fleet finding as the next one would (none new, none
reopened, no rule failed, no workload facts read: those are not among the inputs) is recorded
for that; any other clears the record.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from store.findings import (
    KnownFinding,
    active_findings,
    reconcile_findings,
    unchanged_outcome,
)
from store.fleet_state import hold_last_evaluation, read_fleet_inputs, record_evaluation
from store.images import inventory_digests
from store.types import utcnow
from workers.engine import EngineHandle
from workers.services.fleet_rules import fleet_results
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
    skipped: bool = False  # the last evaluation's inputs, still holding: nothing was read


def evaluate_fleet(
    session: Session,
    *,
    rules: EngineHandle,
    timeout_seconds: float,
    now: datetime | None = None,
) -> FleetOutcome:
    """Evaluate the fleet rules on the whole fleet and reconcile their findings (skipped
    when the last evaluation's inputs still hold: the module docstring)."""
    started = time.monotonic()
    at = now or utcnow()
    last = hold_last_evaluation(session)
    inputs = read_fleet_inputs(
        session, history_epoch=last.history_epoch, judged_by=rules.engine.catalogue_version
    )
    if last.covers(inputs.with_inventories(inventory_digests(session, inputs.active)), at=at):
        return FleetOutcome(
            images=0,
            advisories=0,
            clusters=0,
            duration_s=round(time.monotonic() - started, 3),
            skipped=True,
        )
    found = fleet_results(
        session, rules=rules, timeout_seconds=timeout_seconds, now=at, active=inputs.active
    )
    for message in found.errors:
        log.error("fleet rule failed: %s", message)
    owned = found.owned
    known = set(inputs.active)  # a disabled cluster's fleet findings stay as they were
    stored = active_findings(session, rule_ids=rules.fleet_rule_ids)
    with_findings = {
        cluster_id
        for cluster_id, findings in stored.items()
        if any(finding.rule_id in owned for finding in findings.values())
    }
    clusters = (set(found.results) | with_findings) & known
    totals: dict[str, int] = defaultdict(int)

    def evaluated(finding: KnownFinding) -> bool:
        return finding.rule_id in owned

    for cluster_id in sorted(clusters):
        results = found.results.get(cluster_id, [])
        configured = rules.apply_config(
            results,
            cluster_id=cluster_id,
            facts=found.facts.get(cluster_id, {}),
            stored=found.exemptions.get(cluster_id, ()),
            now=at,
        )
        observed = [
            observed_finding(Candidate(result, None, "fleet"), result) for result in configured
        ]
        # A cluster whose fleet findings are already exactly these (the common case: the
        # fleet's images did not change) is not reconciled: that would write nothing.
        outcome = unchanged_outcome(stored.get(cluster_id, {}), observed)
        if outcome is None:
            outcome = reconcile_findings(
                session,
                cluster_id,
                scan_id=None,
                observed=observed,
                evaluated=evaluated,
                at=at,
                rule_ids=rules.fleet_rule_ids,  # the cluster's other findings are not read
            )
        for name, value in outcome.as_counts().items():
            totals[name] += value
    settled = not (found.errors or found.facts or totals["new"] or totals["reopened"])
    record_evaluation(
        session,
        inputs=inputs.with_inventories(found.uses_digests) if settled else None,
        valid_until=found.holds_until,
        at=at,
    )
    return FleetOutcome(
        images=found.images,
        advisories=found.advisories,
        clusters=len(clusters),
        duration_s=round(time.monotonic() - started, 3),
        counts=dict(totals),
        errors=found.errors,
    )
