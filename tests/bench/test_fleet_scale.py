"""The fleet-scale benchmark area, shrunk: the load has the promised shape; every step measures."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import fleet_scale
from bench.databases import server_url
from bench.fleet_scale import FleetShape
from bench.harness import Figure

pytestmark = [pytest.mark.postgres]

SHAPE = FleetShape(objects=200, days=31, pings=62, scans=6, findings=10)


def shrunk_run(
    *,
    purge_baseline_s: float | None,
    plot_to: Path | None,
    free_space: Callable[[str], int] = fleet_scale.database_disk_free,
) -> list[Figure]:
    """The area's steps to 2 then 3 clusters of SHAPE, one run each, on a database of its own."""
    return fleet_scale.run_steps(
        (2, 3),
        shape=SHAPE,
        runs=1,
        purge_baseline_s=purge_baseline_s,
        plot_to=plot_to,
        database=f"k8smon_test_fleet_{uuid.uuid4().hex[:8]}",
        free_space=free_space,
    )


def test_shrunk_run_loads_the_history_measures_each_step_and_purges_one_day(
    tmp_path: Path,
) -> None:
    plot = tmp_path / "fleet-scale.png"
    figures = shrunk_run(purge_baseline_s=2.0, plot_to=plot)
    by_name = {f.name.split(" (")[0]: f for f in figures}
    load = by_name["load"]
    # 3 clusters x 200 objects: 70% Deployments with 8 versions, 30% ConfigMaps with 2.
    assert "600 current objects, 3,720 versions, 186 pings" in load.name
    assert {"2_clusters", "3_clusters", "3_clusters_copy_s", "3_clusters_rebuild_s"} <= set(
        load.extra
    )
    search = by_name["distinct-image search over current manifests"]
    assert search.samples and all(s > 0 for s in search.samples)
    assert search.met is None  # not the full size: no verdict
    # the search answers from the loaded image index: 3 clusters' main and sidecar images
    assert int(search.note.split(" distinct images")[0].replace(",", "")) > 100
    assert set(search.extra) == {"2_clusters", "3_clusters"}
    at = by_name["distinct-image search --at 7 days ago"]
    assert at.samples and at.met is None and set(at.extra) == {"2_clusters", "3_clusters"}
    between = by_name["distinct-image search --between a one-day window 7 days ago"]
    assert between.samples and set(between.extra) == {"2_clusters", "3_clusters"}
    # 140 Deployments x 4 distinct bodies + 60 ConfigMaps x 2, per cluster
    assert "2,040 distinct bodies" in load.note
    assert by_name["fleet page"].samples and by_name["cluster page, 200 objects"].samples
    assert 200 < by_name["database bytes per stored manifest version"].median < 20_000
    assert by_name["database bytes per telemetry ping"].median > 0
    purge = by_name["ingest p99 during the daily purge"]
    # One day of 31 past the retention: 1/31 of the superseded versions and of the pings.
    superseded = 3 * (140 * 7 + 60 * 1)
    deleted_versions = purge.extra["manifest_versions"]
    assert superseded / 31 * 0.5 < deleted_versions < superseded / 31 * 2
    assert 186 / 31 * 0.5 <= purge.extra["telemetry_pings"] <= 186 / 31 * 2
    assert plot.stat().st_size > 10_000
    keys = by_name["foreign keys checked after the load"]
    # six foreign keys (the image index's among them) and the seconds the check took
    assert keys.met is True and keys.median == 0 and len(keys.extra) == 7
    assert "body_images.content_hash" in keys.extra


def test_quick_mode_says_full_mode_only(tmp_path: Path) -> None:
    (figure,) = fleet_scale.run(quick=True, out=tmp_path)
    assert not figure.measured
    assert figure.note == "full mode only"


def test_the_plot_goes_beside_the_results_not_to_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--out DIR` (or build/bench-quick): the plot is written there; docs/ only when the run
    publishes there."""
    asked: dict[str, object] = {}

    def run_steps(steps: object, **options: object) -> list[object]:
        asked.update(options, steps=steps)
        return []

    monkeypatch.setattr(fleet_scale, "run_steps", run_steps)
    monkeypatch.setenv("K8SMON_BENCH_FLEET_CLUSTERS", "25")
    out = tmp_path / "fleet"
    fleet_scale.run(quick=False, out=out)
    assert asked["plot_to"] == out / "fleet-scale.png" and out.is_dir()
    assert asked["steps"] == [25]


def test_the_local_servers_free_space_is_read_on_its_data_directorys_disk() -> None:
    url = server_url().render_as_string(hide_password=False)
    assert fleet_scale.database_disk_free(url) > 0


def test_the_disk_guard_stops_at_the_size_loaded_and_says_so_in_the_figures(
    tmp_path: Path,
) -> None:
    """Free space for the first step but not the second: the run measures 2 clusters, purges
    there, and its figures say the guard stopped it (no verdict: not the full size)."""
    asked: list[str] = []

    def free_space(url: str) -> int:
        asked.append(url)
        # the first step fits (estimate: 2 x 2.5 MiB); the second, measured, would not
        return fleet_scale.MIN_FREE_BYTES + (2**30 if len(asked) == 1 else 0)

    figures = shrunk_run(purge_baseline_s=1.0, plot_to=None, free_space=free_space)
    assert len(asked) == 2 and all(url.endswith(asked[0].rsplit("/", 1)[1]) for url in asked)
    by_name = {f.name.split(" (")[0]: f for f in figures}
    load = by_name["load"]
    assert "400 current objects" in load.name and set(load.extra) >= {"2_clusters"}
    assert "3_clusters" not in load.extra
    assert "stopped at 2 clusters by the disk guard: the step to 3 clusters" in load.note
    assert "disk guard" in by_name["database bytes per stored manifest version"].note
    assert by_name["distinct-image search over current manifests"].met is None
    assert "ingest p99 during the daily purge" in by_name


def test_the_disk_guard_may_stop_the_run_before_its_first_step() -> None:
    (figure,) = shrunk_run(purge_baseline_s=None, plot_to=None, free_space=lambda url: 0)
    assert not figure.measured
    assert figure.note.startswith("stopped at 0 clusters by the disk guard")
