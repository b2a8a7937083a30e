"""Quick benchmark runs never rewrite the published docs/benchmarks.*; a full run publishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run
from bench.harness import Figure

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = (REPO / "docs" / "benchmarks.md", REPO / "docs" / "benchmarks.json")


def test_only_a_full_run_writes_to_docs(tmp_path: Path) -> None:
    assert run.output_paths(quick=False, out=None) == (run.RESULTS_MD, run.RESULTS_JSON)
    md, json_path = run.output_paths(quick=True, out=None)
    assert md.parent == json_path.parent == run.QUICK_DIR
    assert not md.resolve().is_relative_to((REPO / "docs").resolve())
    assert run.output_paths(quick=True, out=tmp_path) == (
        tmp_path / "benchmarks.md",
        tmp_path / "benchmarks.json",
    )
    with pytest.raises(ValueError, match="does not publish"):
        run.output_paths(quick=True, out=REPO / "docs")


def test_quick_flag_with_out_docs_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "scaling", "--out", "docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "does not publish" in done.stderr


def test_quick_run_leaves_the_published_results_byte_identical() -> None:
    """The real quick entry point, on its cheapest area (no database), writes build/ only."""
    before = [path.read_bytes() for path in PUBLISHED]
    status_before = _git_status()
    quick_json = run.QUICK_DIR / "benchmarks.json"
    quick_json.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "scaling"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert [path.read_bytes() for path in PUBLISHED] == before
    assert _git_status() == status_before
    written = json.loads(quick_json.read_text(encoding="utf-8"))
    assert written["quick"] is True
    assert {f["area"] for f in written["figures"]} == {"scaling"}
    table = (run.QUICK_DIR / "benchmarks.md").read_text(encoding="utf-8")
    assert "quick mode" in table
    assert "| floor |" in table


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--", "docs/benchmarks.md", "docs/benchmarks.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_floor_is_shown_beside_its_figure_and_unmeasured_rows_say_so(tmp_path: Path) -> None:
    figures = [
        Figure(
            "scan",
            "full scan",
            "objects/s",
            (30_000.0, 32_000.0),
            floor=60_000.0,
            floor_of="orjson.loads of the same objects",
        ),
        Figure("scan", "checkov, whole process", "CPU s", (), note="checkov not installed"),
    ]
    table = run.render_table(figures)
    assert (
        "| 31,000 objects/s | ±3% | 2 | 60,000 objects/s (orjson.loads of the same objects) |"
        in (table)
    )
    assert "| not measured | ±0% | 0 | — |" in table
    md, json_path = tmp_path / "b.md", tmp_path / "b.json"
    run.publish(figures, [], quick=True, results_md=md, results_json=json_path)
    assert "60,000 objects/s" in md.read_text(encoding="utf-8")
    rows = json.loads(json_path.read_text(encoding="utf-8"))["figures"]
    assert rows[0]["floor"] == 60_000.0
    assert rows[0]["floor_of"] == "orjson.loads of the same objects"
    assert rows[1]["median"] is None


def test_a_figure_kept_from_earlier_runs_is_marked_once(tmp_path: Path) -> None:
    md, json_path = tmp_path / "b.md", tmp_path / "b.json"
    kept = Figure("scan", "full scan", "objects/s", (30_000.0,), note="78 rules")
    run.publish([kept], [], quick=False, results_md=md, results_json=json_path)
    for area in ("ingest", "pipeline"):  # two later runs of other areas
        fresh = Figure(area, "something", "s", (1.0,))
        run.publish([fresh], [], quick=False, results_md=md, results_json=json_path)
    notes = {
        row["area"]: row["note"]
        for row in json.loads(json_path.read_text(encoding="utf-8"))["figures"]
    }
    assert notes["scan"] == "78 rules (earlier run)"
    assert notes["ingest"] == "(earlier run)"
    assert notes["pipeline"] == ""
