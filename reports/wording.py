"""One vocabulary for finding counts: "109 open findings (109 new, 0 resolved, 0 exempted)".

"open" is every finding that still needs attention, the new ones included; "new" are those
this scan found first, "resolved" those it found gone, "exempted" those an exemption covers.
The text report (`make demo`), the HTML report and `k8smon scans` all say it this way. A scan
run's stored counts keep `open` for the findings that were already open before it (`new`
apart), so `open_total` adds them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def open_total(counts: Mapping[str, Any]) -> int:
    """Findings needing attention after the scan: already open plus new."""
    return int(counts.get("open") or 0) + int(counts.get("new") or 0)


def count_summary(counts: Mapping[str, Any]) -> str:
    """`N open findings (N new, N resolved, N exempted)` for a scan run's counts."""
    return (
        f"{open_total(counts)} open findings ({int(counts.get('new') or 0)} new, "
        f"{int(counts.get('resolved') or 0)} resolved, "
        f"{int(counts.get('exempted') or 0)} exempted)"
    )
