"""The fleet rules (image drift, advisories) on the stored state: what they find for the whole
fleet or for one cluster, with the facts its exemptions read.

The one place both callers get fleet-rule results from: the fleet evaluation
(`workers.services.fleet`, every cluster at once: after a fleet scan and when advisories
change) and a cluster scan's finalize (`workers.services.scanning`, that cluster only: a push's
scan gives its drift and advisory findings at once). For one cluster the inventory is that
cluster's running images plus the rest of the fleet's images *of the repositories it runs*:
drift compares a workload only with its own repository and an advisory judges each image
alone, so that cluster's results are exactly the ones the whole fleet's evaluation gives it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.images import parse_image
from rules import Result
from rules.config import EXEMPT_ANNOTATION, Exemption
from rules.configure import ObjectFacts, exemptions_hold_until, reads_facts
from rules.fleet import FleetContext, RunningImage
from store.advisories import loaded_advisories
from store.exemptions import exemptions_by_cluster
from store.images import ImageUse, cached_inventory_uses, image_ref, image_uses
from store.manifests import current_metadata
from store.models import Cluster
from workers.engine import EngineHandle
from workers.services.exemptions import stored_exemptions


@dataclass(slots=True)
class FleetResults:
    """What the fleet rules found, by cluster: `results` (before configuration),
    `exemptions` (the stored ones that apply to each cluster with results, active, as the
    rules take them), `facts` (labels and exemption annotation of the workloads they name, by
    ref key: what label selectors and annotations of exemptions match; only of the clusters
    whose configuration reads them, `reads_facts`), `owned` (the fleet rules that ran without
    error: only their findings may be resolved), the inventory's size and the errors."""

    results: dict[str, list[Result]] = field(default_factory=dict)
    exemptions: dict[str, tuple[Exemption, ...]] = field(default_factory=dict)
    facts: dict[str, dict[str, ObjectFacts]] = field(default_factory=dict)
    owned: frozenset[str] = frozenset()
    images: int = 0
    advisories: int = 0
    errors: list[str] = field(default_factory=list)
    # The whole fleet's evaluation only: the digest of each cluster's uses as judged (None:
    # not cached), and until when these results, configured, hold with time alone (None:
    # for ever), which is what `store.fleet_state` records of it.
    uses_digests: dict[str, str | None] = field(default_factory=dict)
    holds_until: datetime | None = None


def running_image(use: ImageUse) -> RunningImage:
    """A stored inventory row as the fleet rules see it."""
    return RunningImage(
        cluster=use.cluster_id,
        workload=use.workload,
        container=use.container,
        path=use.path,
        image=image_ref(use.image),
        digests=use.digests,
        since=use.since,
    )


def active_clusters(session: Session) -> list[str]:
    """The clusters whose last state runs (a disabled cluster's neither counts nor gets
    findings)."""
    return sorted(session.scalars(select(Cluster.id).where(Cluster.status == "active")))


def _fleet_inventory(
    session: Session, *, active: Sequence[str], timeout_seconds: float
) -> tuple[list[ImageUse], dict[str, str | None]]:
    """The whole fleet's inventory, each cluster's rows read from its bodies only when its
    state changed since they were cached (`cached_inventory_uses`), and the digest of each
    cluster's uses."""
    uses: list[ImageUse] = []
    digests: dict[str, str | None] = {}
    parts = cached_inventory_uses(
        session,
        active,
        deadline=time.monotonic() + timeout_seconds,
        timeout_seconds=timeout_seconds,
    )
    for part in parts:
        uses.extend(part.uses)
        digests[part.cluster_id] = part.digest
    return uses, digests


def _inventory(
    session: Session, *, active: list[str], cluster_id: str, timeout_seconds: float
) -> list[ImageUse]:
    """The inventory the fleet rules judge for one cluster: its uses, and the rest of the
    fleet's of the repositories it runs (`image_uses(cached=True)`)."""
    if cluster_id not in active:
        return []
    own = image_uses(
        session, timeout_seconds=timeout_seconds, cluster_ids=[cluster_id], cached=True
    )
    repositories = {parse_image(u.image).repository for u in own}
    others = [c for c in active if c != cluster_id]
    if not repositories or not others:
        return own
    return own + image_uses(
        session,
        timeout_seconds=timeout_seconds,
        cluster_ids=others,
        repositories=repositories,
        cached=True,
    )


def workload_facts(
    session: Session, results: Mapping[str, Sequence[Result]]
) -> dict[str, dict[str, ObjectFacts]]:
    """The facts configuration reads of the workloads each cluster's `results` name (those
    stored), by cluster (every cluster of `results`) and ref key: their labels and exemption
    annotation, read without their bodies and for every cluster at once
    (`current_metadata`)."""
    stored = current_metadata(
        session,
        {cluster_id: {r.resource.key for r in found} for cluster_id, found in results.items()},
        annotation=EXEMPT_ANNOTATION,
    )
    return {
        cluster_id: {
            key: ObjectFacts.of(
                labels if isinstance(labels, dict) else None,
                None if exempt is None else {EXEMPT_ANNOTATION: exempt},
            )
            for key, (labels, exempt) in stored.get(cluster_id, {}).items()
        }
        for cluster_id in results
    }


def fleet_results(
    session: Session,
    *,
    rules: EngineHandle,
    timeout_seconds: float,
    now: datetime,
    cluster_id: str | None = None,
    active: list[str] | None = None,
) -> FleetResults:
    """Evaluate the fleet rules on the stored state of every active cluster (`active`: those
    clusters, when the caller read them; `cluster_id`: only that cluster's results, from the
    part of the fleet they depend on). Raises `store.search.SearchTimeout` when the inventory
    takes longer than `timeout_seconds`."""
    if active is None:
        active = active_clusters(session)
    digests: dict[str, str | None] = {}
    if cluster_id is None:
        uses, digests = _fleet_inventory(session, active=active, timeout_seconds=timeout_seconds)
    else:
        uses = _inventory(
            session, active=active, cluster_id=cluster_id, timeout_seconds=timeout_seconds
        )
    advisories = loaded_advisories(session)
    context = FleetContext(
        images=tuple(running_image(u) for u in uses),
        advisories=tuple(advisories),
        drift=rules.engine.config.image_drift,
        now=now,
    )
    found = FleetResults(images=len(uses), advisories=len(advisories), uses_digests=digests)
    by_cluster: dict[str, list[Result]] = defaultdict(list)
    crashed: set[str] = set()
    for subject_cluster, result in rules.engine.evaluate_fleet(context):
        if result.is_error:
            crashed.add(result.rule_id)
            found.errors.append(result.message)
        elif subject_cluster is not None and (cluster_id is None or subject_cluster == cluster_id):
            by_cluster[subject_cluster].append(result)
    found.owned = rules.fleet_rule_ids - crashed
    found.results = dict(by_cluster)
    stored = exemptions_by_cluster(session, found.results)  # every cluster's in one read
    found.exemptions = {c: stored_exemptions(rows) for c, rows in stored.items()}
    config = rules.engine.config
    found.facts = workload_facts(
        session,
        {
            c: results
            for c, results in found.results.items()
            if reads_facts(config, stored=found.exemptions[c])
        },
    )
    found.holds_until = _earliest(
        context.holds_until(),
        *(
            exemptions_hold_until(config, stored=found.exemptions[c], now=now)
            for c in found.results
        ),
    )
    return found


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((m for m in moments if m is not None), default=None)
