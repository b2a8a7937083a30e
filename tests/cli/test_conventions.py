"""The CLI's conventions (kubectl/trivy): `-o table|wide|json|yaml|csv`, severity at or above,
sorting, ages, `--exit-code`, completion, `rescan --all`, `audit`, `users list -o`,
exemption rule checks, `images` — and agent-supplied text shown as data, never as markup,
links or terminal escapes. The hostile-name tests run the real `k8smon` executable."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from store.models import ScanRun
from tests.cli.conftest import Operator
from tests.cli.hostile import FORMULA, K8SMON, k8smon
from tests.support.manifests import deployment
from tests.support.workloads import workloads
from tests.web.fleet import privileged, push

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
BOX_DRAWING = re.compile("[\u2500-\u257f]")


def test_hostile_names_are_data_in_every_table(hostile: Operator) -> None:
    for args in (
        ("telemetry",),
        ("findings", "--cluster", "prod-eu"),
        ("findings", "--cluster", "prod-eu", "-o", "wide"),
        ("search", "$.metadata.name", "--cluster", "prod-eu"),
        ("search", "$..image", "--distinct"),
        ("images",),
        ("clusters", "list"),
    ):
        result = k8smon(hostile, *args)
        stdout = result.stdout.decode("utf-8")
        assert result.returncode == 0, (args, result.stderr.decode())
        assert b"Traceback" not in result.stderr
        # No escape sequence, bell or bidi override reaches the terminal raw ...
        assert "\x1b" not in stdout and "\x07" not in stdout and "\u202e" not in stdout, args
    for args in (
        ("findings", "--cluster", "prod-eu", "-o", "wide"),
        ("search", "$.metadata.name", "--cluster", "prod-eu", "-o", "wide"),
    ):
        # ... they are shown visibly, and markup is shown as the text it is.
        flat = k8smon(hostile, *args).stdout.decode("utf-8")
        assert "web-[/oops]" in flat, args
        assert "[link=https://evil.example]open-me[/link]" in flat, args
        assert "\\x1b]0;pwned\\x07api" in flat, args
        assert "\\x1b[2Jwipe" in flat, args
        assert "abc\\u202egpj.exe" in flat, args
    telemetry = k8smon(hostile, "telemetry", "-o", "wide").stdout.decode()
    assert "[/oops]\\x1b]0;agent\\x07" in telemetry.replace(" ", "")


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(hostile: Operator) -> None:
    result = k8smon(hostile, "findings", "--cluster", "prod-eu", "-o", "csv")
    assert result.returncode == 0, result.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode("utf-8"))))
    names = {r["name"] for r in rows}
    assert "'" + FORMULA in names and FORMULA not in names
    # Every cell that starts with = + - @ tab or CR carries the leading quote.
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    images = k8smon(hostile, "search", "$..image", "--distinct", "-o", "csv").stdout.decode()
    assert "'-cmd|' /C calc'!A0" in images
    # JSON keeps the data as it is (a program reads it, not a spreadsheet).
    as_json = json.loads(k8smon(hostile, "findings", "--cluster", "prod-eu", "-o", "json").stdout)
    assert FORMULA in {f["name"] for f in as_json}


def test_output_formats_wide_yaml_and_piped_tables(operator: Operator) -> None:
    as_json = json.loads(operator.run("findings", "-o", "json").stdout)
    alias = json.loads(operator.run("findings", "--format", "json").stdout)
    long_form = json.loads(operator.run("findings", "--output", "json").stdout)
    assert as_json == alias == long_form and as_json
    as_yaml = yaml.safe_load(operator.run("findings", "-o", "yaml").stdout)
    assert as_yaml == as_json
    clusters = yaml.safe_load(operator.run("clusters", "list", "-o", "yaml").stdout)
    assert {c["id"] for c in clusters} >= {"prod-eu", "staging-us"}
    shown = yaml.safe_load(operator.run("clusters", "show", "prod-eu", "-o", "yaml").stdout)
    assert shown["id"] == "prod-eu"
    table = operator.run("findings").stdout
    wide = operator.run("findings", "-o", "wide").stdout
    header = next(line.split() for line in table.splitlines() if line.startswith("severity"))
    assert header == [
        "severity",
        "cluster",
        "rule",
        "status",
        "kind",
        "namespace",
        "name",
        "message",
        "age",
    ]
    wide_header = next(line.split() for line in wide.splitlines() if line.startswith("severity"))
    assert {"container", "path", "last"} <= set(wide_header)
    for text in (table, operator.run("clusters", "list").stdout, operator.run("scans").stdout):
        assert not BOX_DRAWING.search(text), text  # piped: plain columns
        assert not ISO_TIME.search(text), text  # ages, not timestamps
        assert max(len(line) for line in text.splitlines()) <= 100
    assert re.search(r"\b\d+[smhd]\b", table)
    bad = operator.run("findings", "-o", "xml")
    assert bad.exit_code == 2


def _host_network(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["template"]["spec"]["hostNetwork"] = True
    return body


def test_severity_means_at_or_above_and_findings_are_sorted(operator: Operator) -> None:
    with operator.fleet.sessions() as session:
        push(
            session,
            "staging-us",
            [
                privileged(deployment("api", namespace="qa", image="registry.example/api:2")),
                _host_network(deployment("edge", namespace="qa", image="nginx:latest")),
            ],
        )
        session.commit()
    operator.fleet.scan("staging-us")
    everything = json.loads(operator.run("findings", "-o", "json", "--limit", "5000").stdout)
    ranks = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
    order = [(ranks[f["severity"]], f["first_seen"]) for f in everything]
    for before, after in itertools.pairwise(order):
        assert before[0] > after[0] or (before[0] == after[0] and before[1] >= after[1])
    present = {f["severity"] for f in everything}
    assert {"critical", "high"} <= present and present - {"critical", "high"}
    high = json.loads(operator.run("findings", "--severity", "high", "-o", "json").stdout)
    assert {f["severity"] for f in high} == {"critical", "high"}
    listed = json.loads(
        operator.run("findings", "--severity", "critical,medium", "-o", "json").stdout
    )
    assert {f["severity"] for f in listed} <= {"critical", "medium"}
    assert {f["severity"] for f in listed} == present & {"critical", "medium"}
    csv_rows = list(csv.DictReader(io.StringIO(operator.run("findings", "-o", "csv").stdout)))
    assert all(r["message"] for r in csv_rows)
    bad = operator.run("findings", "--severity", "urgent,high")
    assert bad.exit_code == 2 and "unknown severity 'urgent'" in bad.stderr


def test_exit_code_is_a_ci_gate(operator: Operator) -> None:
    failing = operator.run("findings", "--cluster", "prod-eu", "--exit-code", "3")
    assert failing.exit_code == 3 and "active finding" in failing.stderr
    clean = operator.run(
        "findings", "--cluster", "staging-us", "--severity", "critical", "--exit-code", "3"
    )
    assert clean.exit_code == 0, clean.output
    resolved_only = operator.run("findings", "--status", "resolved", "--exit-code", "3")
    assert resolved_only.exit_code == 0


def test_completion_scripts(operator: Operator) -> None:
    for shell, marker in (("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")):
        script = subprocess.run(
            [K8SMON, "completion", shell], capture_output=True, check=True, timeout=60
        ).stdout.decode()
        assert "_K8SMON_COMPLETE" in script and marker in script
    env = {**os.environ, "_K8SMON_COMPLETE": "bash_complete", "COMP_WORDS": "k8smon fin"}
    env["COMP_CWORD"] = "1"
    words = subprocess.run(
        [K8SMON], capture_output=True, env=env, check=False, timeout=60
    ).stdout.decode()
    assert "findings" in words
    assert operator.run("completion", "tcsh").exit_code == 2


def test_rescan_all_requests_a_fleet_scan(operator: Operator) -> None:
    with operator.fleet.sessions() as session:
        before = session.scalar(select(ScanRun.id).order_by(ScanRun.id.desc()).limit(1)) or 0
    result = operator.run("rescan", "--all")
    assert result.exit_code == 0, result.output
    assert "fleet scan requested" in result.stderr
    with operator.fleet.sessions() as session:
        scanned = set(session.scalars(select(ScanRun.cluster_id).where(ScanRun.id > before)))
    assert {"prod-eu", "staging-us"} <= scanned
    assert operator.run("rescan").exit_code == 2
    assert operator.run("rescan", "prod-eu", "--all").exit_code == 2


def test_audit_command(operator: Operator) -> None:
    operator.run("rescan", "prod-eu")
    result = operator.run("audit", "--action", "scan.trigger", "-o", "json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert entries and {e["action"] for e in entries} == {"scan.trigger"}
    assert entries[0]["actor"] == "alice" and entries[0]["target"] == "prod-eu"
    table = operator.run("audit", "--actor", "alice").stdout
    assert "scan.trigger" in table and not ISO_TIME.search(table)
    assert operator.run("audit", config=operator.viewer_config).exit_code == 4


def test_exemption_rule_ids_are_checked_and_removing_twice_is_not_found(
    operator: Operator,
) -> None:
    unknown = operator.run(
        "exemptions", "add", "--rule", "KM-999", "--reason", "x", "--expires", "30d"
    )
    assert unknown.exit_code == 2
    assert "unknown rule 'KM-999': not in the rule catalogue" in unknown.stderr
    added = operator.run(
        "exemptions", "add", "--rule", "km-101", "--reason", "x", "--expires", "30d", "-o", "json"
    )
    assert added.exit_code == 0, added.output
    created = json.loads(added.stdout)
    assert created["rule_ids"] == ["KM-101"]
    first = operator.run("exemptions", "remove", str(created["id"]))
    assert first.exit_code == 0
    second = operator.run("exemptions", "remove", str(created["id"]))
    assert second.exit_code == 5
    assert f"exemption {created['id']} was already removed" in second.stderr


def test_users_list_output_formats(tmp_path: Path) -> None:
    env = {
        "K8SMON_ENV": "embedded",
        "K8SMON_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}",
    }
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    added = runner.invoke(
        main,
        ["users", "add", "carol", "--role", "admin", "--password-stdin"],
        input="a long enough password\n",
        env=env,
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["users", "list", "-o", "json"], env=env)
    assert json.loads(listed.stdout) == [{"username": "carol", "role": "admin", "state": "active"}]
    assert "carol" in runner.invoke(main, ["users", "list", "--format", "csv"], env=env).stdout


def test_images_counts_each_image_once_per_workload(operator: Operator) -> None:
    with operator.fleet.sessions() as session:
        api = deployment("api", namespace="qa", image="registry.example/api:2")
        push(session, "staging-us", [*workloads(), api])
        session.commit()
    result = operator.run("images", "--cluster", "staging-us", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = {r["image"]: (r["workloads"], r["clusters"]) for r in json.loads(result.stdout)}
    assert rows == {
        # the Deployment web (its template, ReplicaSet bbb, three Pods) and the bare Pod
        "shop/web:2": (2, ["staging-us"]),
        # an old ReplicaSet revision still stored: part of the Deployment web
        "shop/web:1": (1, ["staging-us"]),
        "ops/backup:7": (1, ["staging-us"]),  # CronJob, its Job and Pod: one workload
        "busybox:1": (1, ["staging-us"]),
        "nicolaka/netshoot:1": (1, ["staging-us"]),
        "registry.example/api:2": (1, ["staging-us"]),
    }
    fleet = {r["image"]: r for r in json.loads(operator.run("images", "-o", "json").stdout)}
    assert fleet["registry.example/api:2"]["clusters"] == ["prod-eu", "staging-us"]
    assert fleet["registry.example/api:2"]["workloads"] == 2
    table = operator.run("images").stdout
    assert "shop/web:2" in table and "workloads" in table
