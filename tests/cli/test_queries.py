"""`k8smon telemetry|search|findings|exemptions|rescan|scans|report` against a live server."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from cli.commands.exemptions import parse_expiry
from store.models import Exemption, Finding, TelemetryPing
from tests.cli.conftest import Operator
from tests.support.factories import make_failed_scan


def _has_route(operator: Operator, rule: str) -> bool:
    return any(r.rule == rule for r in operator.fleet.app.url_map.iter_rules())


def test_telemetry_marks_stale_clusters(operator: Operator) -> None:
    with operator.fleet.sessions() as session:
        session.execute(
            update(TelemetryPing)
            .where(TelemetryPing.cluster_id == "staging-us")
            .values(received_at=datetime.now(UTC) - timedelta(hours=3))
        )
        session.commit()
    result = operator.run("telemetry", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["cluster_id"]: r for r in json.loads(result.stdout)}
    assert rows["prod-eu"]["stale"] is False and rows["staging-us"]["stale"] is True
    assert rows["prod-eu"]["kubernetes_version"] == "v1.31.2"
    assert rows["staging-us"]["age"] == "3.0 h"
    lenient = json.loads(operator.run("telemetry", "--stale", "4h", "--format", "json").stdout)
    assert not any(r["stale"] for r in lenient)
    only = operator.run("telemetry", "--only-stale", "--format", "csv").stdout.splitlines()
    assert len(only) == 2 and only[1].startswith("staging-us,")
    table = operator.run("telemetry")
    assert "1 stale cluster (no ping for more than 15 min)" in table.stderr
    assert "staging-us" in table.stdout
    # The agent's report on its latest push, as the server stored it from the ping.
    assert rows["prod-eu"]["last_push"]["result"] == "accepted"
    assert rows["prod-eu"]["last_push_summary"] == "accepted (delta, 5 min ago)"
    assert rows["staging-us"]["last_push_summary"] == "failed: rate_limited (full, 5 min ago)"
    assert "last push" in table.stdout and "rate_limited" in table.stdout
    bad = operator.run("telemetry", "--stale", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.stderr


def test_search_lists_every_image_distinct(operator: Operator) -> None:
    result = operator.run(
        "search",
        "$.spec.template.spec.containers[*].image",
        "--kind",
        "Deployment",
        "--distinct",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"value": "registry.example/api:2", "occurrences": 2, "clusters": 2},
        {"value": "registry.example/web:1.1", "occurrences": 1, "clusters": 1},
    ]
    # The server counts every match; --limit only caps how many values come back.
    top = operator.run(
        "search",
        "$.spec.template.spec.containers[*].image",
        "--distinct",
        "--limit",
        "1",
        "--format",
        "json",
    )
    assert json.loads(top.stdout) == [
        {"value": "registry.example/api:2", "occurrences": 2, "clusters": 2}
    ]
    assert "only the 1 most frequent values are listed" in top.stderr
    too_many = operator.run("search", "$.kind", "--limit", "6000")
    assert too_many.exit_code == 2 and "without --distinct" in too_many.stderr
    hits = operator.run("search", "$.spec.replicas", "--cluster", "prod-eu", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(hits.stdout)))
    assert {(r["kind"], r["name"], r["value"]) for r in rows} == {
        ("Deployment", "api", "2"),
        ("Deployment", "web", "2"),
    }
    table = operator.run("search", "$.metadata.name", "--namespace", "qa")
    assert "api" in table.stdout


def test_search_with_an_invalid_path_is_a_clear_400(operator: Operator) -> None:
    result = operator.run("search", "$.spec[")
    assert result.exit_code == 6
    assert result.stderr.startswith("error: 400 bad request (invalid_json_path)")
    assert len(result.stderr.strip().splitlines()) == 1


def test_findings_filters(operator: Operator) -> None:
    result = operator.run(
        "findings", "--cluster", "prod-eu", "--severity", "critical", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["rule_id"], r["name"]) for r in rows] == [("KM-101", "web")]
    everything = json.loads(operator.run("findings", "--format", "json", "--limit", "5000").stdout)
    with operator.fleet.sessions() as session:
        assert len(everything) == len(session.scalars(select(Finding)).all())
    bad = operator.run("findings", "--severity", "urgent")
    assert bad.exit_code == 2


def test_exemption_lifecycle_applies_after_rescan(operator: Operator) -> None:
    missing_reason = operator.run("exemptions", "add", "--rule", "KM-101", "--expires", "30d")
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.stderr
    missing_expiry = operator.run("exemptions", "add", "--rule", "KM-101", "--reason", "x")
    assert missing_expiry.exit_code == 2 and "--expires" in missing_expiry.stderr
    past = operator.run(
        "exemptions", "add", "--rule", "KM-101", "--reason", "x", "--expires", "2001-01-01"
    )
    assert past.exit_code == 2 and "in the past" in past.stderr
    added = operator.run(
        "exemptions",
        "add",
        "--rule",
        "KM-101",
        "--cluster",
        "prod-eu",
        "--kind",
        "Deployment",
        "--name",
        "web",
        "--reason",
        "vendor agent",
        "--expires",
        "30d",
        "--format",
        "json",
    )
    assert added.exit_code == 0, added.output
    created = json.loads(added.stdout)
    assert created["selector"] == {"kind": "Deployment", "name": "web"}
    rescan = operator.run("rescan", "prod-eu")
    assert rescan.exit_code == 0, rescan.output
    assert "rescan of prod-eu requested" in rescan.stderr
    with operator.fleet.sessions() as session:
        finding = session.scalar(select(Finding).where(Finding.rule_id == "KM-101"))
        assert finding.status == "exempted"
    listed = json.loads(operator.run("exemptions", "list", "--format", "json").stdout)
    assert [(e["id"], e["state"]) for e in listed] == [(created["id"], "active")]
    removed = operator.run("exemptions", "remove", str(created["id"]))
    assert removed.exit_code == 0 and "removed" in removed.stderr
    assert json.loads(operator.run("exemptions", "list", "--format", "json").stdout) == []
    everything = json.loads(operator.run("exemptions", "list", "--all", "--format", "json").stdout)
    assert everything[0]["state"] == "removed"
    with operator.fleet.sessions() as session:
        assert session.get(Exemption, created["id"]).revoked_at is not None
    assert operator.run("exemptions", "remove", "999999").exit_code == 5
    viewer = operator.run(
        "exemptions",
        "add",
        "--rule",
        "KM-101",
        "--reason",
        "x",
        "--expires",
        "1d",
        config=operator.viewer_config,
    )
    assert viewer.exit_code == 4


def test_parse_expiry_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry("2026-03-01", now=now) == datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert parse_expiry("30d", now=now) == now + timedelta(days=30)
    assert parse_expiry("2026-03-01T10:00:00+01:00", now=now).utcoffset() == timedelta(hours=1)


def test_rescan_of_unknown_cluster(operator: Operator) -> None:
    result = operator.run("rescan", "nope")
    assert result.exit_code == 5 and "no cluster 'nope'" in result.stderr


def test_scans_and_rescan_wait(operator: Operator) -> None:
    if not _has_route(operator, "/v1/admin/scans"):
        pytest.skip("the admin API has no GET /v1/admin/scans endpoint yet")
    listed = json.loads(operator.run("scans", "--cluster", "prod-eu", "--format", "json").stdout)
    assert listed and listed[0]["cluster_id"] == "prod-eu"
    waited = operator.run("rescan", "prod-eu", "--wait", "--format", "json")
    assert waited.exit_code == 0, waited.output
    [scan] = json.loads(waited.stdout)
    assert scan["state"] == "done" and scan["id"] > listed[0]["id"]


@pytest.mark.parametrize("fmt", ["json", "sarif", "policyreport", "html"])
def test_report_formats(operator: Operator, fmt: str) -> None:
    if not _has_route(operator, "/v1/admin/clusters/<cluster_id>/report"):
        pytest.skip("the admin API has no GET /v1/admin/clusters/<id>/report endpoint yet")
    result = operator.run("report", "prod-eu", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "KM-101" in result.stdout
    if fmt == "html":
        assert result.stdout.lstrip().lower().startswith("<!doctype html")
    else:
        document = json.loads(result.stdout)
        if fmt == "sarif":
            assert document["version"] == "2.1.0"
    target = operator.tmp / f"report.{fmt}"
    written = operator.run("report", "prod-eu", "--format", fmt, "-o", str(target))
    assert written.exit_code == 0 and f"wrote {target}" in written.stderr
    assert target.read_text(encoding="utf-8").strip() == result.stdout.strip()


def test_scans_say_why_a_scan_failed(operator: Operator) -> None:
    reason = "shards 0 and 3 did not finish after 3 re-drives [bold]x[/bold]"
    with operator.fleet.sessions() as session:
        scan_id = make_failed_scan(session, "prod-eu", reason=reason, redrives=3)
    listed = json.loads(operator.run("scans", "--cluster", "prod-eu", "--format", "json").stdout)
    failed = next(s for s in listed if s["id"] == scan_id)
    assert failed["state"] == "failed" and failed["failure_reason"] == reason
    assert failed["redrives"] == 3
    table = operator.run("scans", "--cluster", "prod-eu", "-o", "wide")
    assert table.exit_code == 0, table.output
    assert "reason" in table.stdout and "re-drives" in table.stdout
    assert "[bold]x[/bold]" in " ".join(table.stdout.split())  # markup shown, not applied
