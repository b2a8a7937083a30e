"""One vocabulary for finding counts (reports.wording), whatever prints them."""

from __future__ import annotations

from reports.wording import count_summary, open_total


def test_open_includes_new() -> None:
    counts = {"new": 3, "open": 4, "resolved": 2, "exempted": 1, "objects": 9}
    assert open_total(counts) == 7
    assert count_summary(counts) == "7 open findings (3 new, 2 resolved, 1 exempted)"


def test_missing_counts_read_as_zero() -> None:
    assert count_summary({}) == "0 open findings (0 new, 0 resolved, 0 exempted)"
