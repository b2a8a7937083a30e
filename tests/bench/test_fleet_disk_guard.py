"""The fleet-scale bench's disk guard: a step is loaded only if the disk keeps its reserve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import fleet_scale
from bench.fleet_scale import FleetShape, project_step

GIB = 2**30
FULL = FleetShape()


def test_the_next_step_is_projected_from_the_bytes_per_cluster_measured_so_far() -> None:
    # 400 clusters in 43 GiB: 110 MiB a cluster, so 100 more need about 10.75 GiB.
    kept = project_step(
        loaded=400, database_bytes=43 * GIB, clusters=500, free_bytes=25 * GIB, shape=FULL
    )
    assert kept.bytes_per_cluster == 43 * GIB / 400
    assert kept.added_bytes == int(43 * GIB / 4)
    assert kept.fits  # 25 - 10.75 = 14.25 GiB left
    stopped = project_step(
        loaded=400, database_bytes=43 * GIB, clusters=500, free_bytes=20 * GIB, shape=FULL
    )
    assert not stopped.fits  # 20 - 10.75 = 9.25 GiB left, under the 10 GiB reserve
    text = stopped.describe()
    assert "stopped at 400 clusters by the disk guard" in text
    assert "to 500 clusters would add about 10.8 GiB" in text
    assert "20.0 GiB were free, leaving 9.2 GiB (under 10 GiB)" in text


def test_the_reserve_is_the_limit_exactly() -> None:
    at = project_step(
        loaded=10, database_bytes=10 * GIB, clusters=20, free_bytes=20 * GIB, shape=FULL
    )
    assert at.left_bytes == 10 * GIB and at.fits
    under = project_step(
        loaded=10, database_bytes=10 * GIB, clusters=20, free_bytes=20 * GIB - 1, shape=FULL
    )
    assert not under.fits
    assert project_step(
        loaded=10,
        database_bytes=10 * GIB,
        clusters=20,
        free_bytes=12 * GIB,
        shape=FULL,
        reserve_bytes=2 * GIB,
    ).fits


def test_before_the_first_step_the_estimate_scaled_to_the_shape_is_used() -> None:
    first = project_step(loaded=0, database_bytes=0, clusters=25, free_bytes=80 * GIB, shape=FULL)
    assert first.bytes_per_cluster == fleet_scale.ESTIMATED_BYTES_PER_CLUSTER
    assert first.fits
    assert not project_step(
        loaded=0, database_bytes=0, clusters=25, free_bytes=12 * GIB, shape=FULL
    ).fits  # 25 x 125 MiB = 3.1 GiB would leave 8.9 GiB
    small = FleetShape(objects=200)
    assert project_step(
        loaded=0, database_bytes=0, clusters=2, free_bytes=0, shape=small
    ).bytes_per_cluster == pytest.approx(fleet_scale.ESTIMATED_BYTES_PER_CLUSTER / 50)


def test_free_space_is_read_from_the_nearest_directory_that_can_be_seen(tmp_path: Path) -> None:
    expected = os.statvfs(tmp_path)
    missing = tmp_path / "not" / "there"
    assert fleet_scale._free_bytes_at(missing) == pytest.approx(
        expected.f_bavail * expected.f_frsize, rel=0.01
    )


def test_a_remote_server_is_measured_on_the_root_filesystem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Path] = []

    def free(path: Path) -> int:
        seen.append(path)
        return 7

    def connect(url: str) -> None:
        raise AssertionError("a remote server's data directory is not on this machine")

    monkeypatch.setattr(fleet_scale, "_free_bytes_at", free)
    monkeypatch.setattr(fleet_scale.fleet_load, "connect", connect)
    assert fleet_scale.database_disk_free("postgresql+psycopg2://u@db.example:5432/x") == 7
    assert seen == [Path("/")]
