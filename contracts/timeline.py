"""The vocabulary of a resource's or a cluster's timeline: what happened, grouped for filters."""

from __future__ import annotations

from enum import StrEnum


class FindingEventKind(StrEnum):
    """What a scan did to a finding (stored in `finding_events.event`)."""

    OPENED = "opened"  # first seen, or seen again after it was resolved
    RESOLVED = "resolved"


class TimelineKind(StrEnum):
    """One entry of a timeline."""

    CREATED = "created"  # the first stored version of a resource
    CHANGED = "changed"  # a later version
    DELETED = "deleted"  # the resource left its cluster
    FINDING_OPENED = "finding_opened"
    FINDING_RESOLVED = "finding_resolved"
    SCAN = "scan"


# `types=` filter groups (admin API, pages, `k8smon timeline --types`).
TIMELINE_GROUPS: dict[str, tuple[TimelineKind, ...]] = {
    "resources": (TimelineKind.CREATED, TimelineKind.CHANGED, TimelineKind.DELETED),
    "findings": (TimelineKind.FINDING_OPENED, TimelineKind.FINDING_RESOLVED),
    "scans": (TimelineKind.SCAN,),
}
