"""Kubernetes minor releases and their end of support: the dated table the cluster-version
rule (KM-619) judges clusters by. Refresh it with every Kubernetes release, like the API
removals table in `rules.catalogue.hygiene`.

Dates are the upstream end-of-life dates of https://kubernetes.io/releases/ (patch releases
stop; a managed provider's extended support is the provider's business). `AS_OF` is the day
the table was last refreshed and the day clusters are judged at: scans are reproducible and
their cached results stay valid until the table (and so the catalogue version) changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from rules.psa import LATEST, Version

RELEASES_DOC = "https://kubernetes.io/releases/"
# The day this table was last checked against the upstream release page.
AS_OF = dt.date(2026, 12, 4)


@dataclass(frozen=True, slots=True)
class Release:
    """One Kubernetes minor release: when it came out and when upstream support ends."""

    version: Version
    released: dt.date
    end_of_support: dt.date


def _table() -> dict[Version, Release]:
    rows = (
        ((1, 19), "2020-08-26", "2021-10-28"),
        ((1, 20), "2020-12-08", "2022-02-28"),
        ((1, 21), "2021-04-08", "2022-06-28"),
        ((1, 22), "2021-08-04", "2022-10-28"),
        ((1, 23), "2021-12-07", "2023-02-28"),
        ((1, 24), "2022-05-03", "2023-07-28"),
        ((1, 25), "2022-08-23", "2023-10-28"),
        ((1, 26), "2022-12-09", "2024-02-28"),
        ((1, 27), "2023-04-11", "2024-06-28"),
        ((1, 28), "2023-08-15", "2024-10-28"),
        ((1, 29), "2023-12-13", "2025-02-28"),
        ((1, 30), "2024-04-17", "2025-06-28"),
        ((1, 31), "2024-08-13", "2025-10-28"),
        ((1, 32), "2024-12-11", "2026-02-28"),
        ((1, 33), "2025-04-23", "2026-06-28"),
        ((1, 34), "2025-08-27", "2026-10-27"),
        ((1, 35), "2025-12-17", "2027-02-28"),
        ((1, 36), "2026-04-22", "2027-06-28"),
        ((1, 37), "2026-08-19", "2027-10-28"),
    )
    return {
        version: Release(version, dt.date.fromisoformat(out), dt.date.fromisoformat(end))
        for version, out, end in rows
    }


RELEASES: Mapping[Version, Release] = _table()
OLDEST_LISTED: Version = min(RELEASES)
if max(RELEASES) != LATEST:
    raise RuntimeError("the release table must reach the catalogue's LATEST release")


def end_of_support(version: Version) -> dt.date | None:
    """When upstream support of `version` ends (None: older than the table, long ended)."""
    release = RELEASES.get(version)
    return release.end_of_support if release is not None else None


def is_supported(version: Version, *, on: dt.date = AS_OF) -> bool:
    """Whether upstream still supports `version` on `on` (default: the table's date)."""
    if version > LATEST:
        return True
    ended = end_of_support(version)
    return ended is not None and ended >= on


def next_minor(version: Version) -> Version:
    """The minor release a cluster of `version` upgrades to next."""
    return (version[0], version[1] + 1)


def format_release(version: Version) -> str:
    """`1.33` (the way release notes and provider consoles name a minor)."""
    return f"{version[0]}.{version[1]}"
