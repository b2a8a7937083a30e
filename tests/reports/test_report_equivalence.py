"""A scan's delivered reports, byte for byte as they were written before they were made fast
(`tests/reports/reference_reports.py`): a realistic cluster after a spec change, plus findings
whose every text field holds what HTML and JSON must escape."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bench.corpus import generate
from bench.pipeline import _changed_spec
from contracts.states import FindingStatus
from store.db import unit_of_work
from tests.reports.reference_reports import reference_content, reference_files
from tests.support.factories import make_finding
from tests.workers.conftest import Pipeline
from workers.services.delivery import html_report_dir, report_content, write_cluster_html

NOW = dt.datetime(2026, 12, 6, 18, 30, 15, tzinfo=dt.UTC)
HOSTILE = (
    "<script>alert(\"x\")</script> & 'quoted'",
    "naïve — ✓ 😀 \U0010ffff",
    "tab\tnew\nline\x01\x1f del\x7f",
    'back\\slash "quote" \\u2014 \\x7f',
)


@pytest.fixture(params=["postgresql", "sqlite"])
def make_any_pipeline(request: pytest.FixtureRequest) -> Callable[..., Pipeline]:
    name = "make_pipeline" if request.param == "postgresql" else "make_sqlite_pipeline"
    build: Callable[..., Pipeline] = request.getfixturevalue(name)
    return build


def _hostile_findings(pipeline: Pipeline, cluster_id: str, *, scan_id: int) -> None:
    """Findings of every status and shape with hostile text, as the scan left them."""
    with unit_of_work(pipeline.ctx.sessions) as session:
        for index, text in enumerate(HOSTILE):
            exemption = {"source": "database", "index": 7, "reason": text, "owner": text}
            shapes: tuple[tuple[str, dict[str, Any]], ...] = (
                (FindingStatus.NEW, {"last_scan_id": scan_id}),
                (FindingStatus.OPEN, {"details": {"title": text, "cis": ["5.2.2", text]}}),
                (FindingStatus.EXEMPTED, {"details": {"exemption": exemption, "pss": [text]}}),
                (FindingStatus.EXEMPTED, {"exemption_id": 40 + index}),
                (FindingStatus.RESOLVED, {"last_scan_id": scan_id, "resolved_at": NOW}),
            )
            for position, (status, extra) in enumerate(shapes):
                make_finding(
                    session,
                    cluster_id,
                    rule_id=f"KM-9{index}{position}",
                    name=f"{text}-{status}",
                    namespace=None if index % 2 else text,
                    container=text if index < 2 else None,
                    path=text if index != 1 else None,
                    severity="high" if index < 3 else "<b>&é",
                    status=status,
                    message=text,
                    **extra,
                )


def test_a_scans_reports_are_byte_for_byte_those_of_the_reference(
    make_any_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_any_pipeline()
    objects = generate(400, seed=21)
    pipeline.push_and_process("golden", objects)
    pipeline.run.run("k8smon.rescan", "golden")
    rng = random.Random(5)
    for index in rng.sample(range(len(objects)), 40):
        objects[index] = _changed_spec(objects[index], 5)
    pipeline.push_and_process("golden", objects)
    scan_id = pipeline.run.run("k8smon.rescan", "golden")["scan_id"]
    _hostile_findings(pipeline, "golden", scan_id=scan_id)
    settings = pipeline.ctx.settings
    with unit_of_work(pipeline.ctx.sessions) as session:
        write_cluster_html(session, settings=settings, scan_id=scan_id, now=NOW)
        html, policy_reports = reference_files(
            session, "golden", scan_id=scan_id, public_url=settings.public_url, now=NOW
        )
        content = report_content(
            session, cluster_id="golden", scan_id=scan_id, public_url=settings.public_url
        )
        expected_content = reference_content(
            session, "golden", scan_id=scan_id, public_url=settings.public_url
        )
    folder = html_report_dir(settings)
    written = (folder / "golden.policyreports.json").read_bytes()
    assert b"&lt;script&gt;" in html and "😀".encode() in written  # hostile text, as UTF-8
    assert b"Resolved by this scan" in html and b"Exempted" in html
    assert html.count(b"<tr>") > 700  # the realistic cluster's findings too
    assert (folder / "golden.html").read_bytes() == html
    assert orjson.loads(written) == policy_reports
    # A delivery's content (bound in the scan's finalize) reads only the news, says the same.
    assert content["new"] and content["resolved"] and content == expected_content
