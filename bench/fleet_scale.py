"""Fleet scale (full mode only): 500 clusters x 10,000 objects with a month of history.

The scale of the system this project follows (29 million manifest versions scanned, 11 million
telemetry pings), loaded in steps into a database of its own (`k8smon_bench_fleet`, migrated by
the real migrations, dropped afterwards) by `bench.fleet_load` (generated canonical-JSON bodies
under their SHA-256, streamed with COPY by worker processes; pings, scans and findings by SQL
`generate_series`):

- every cluster holds 10,000 current objects, 70% Deployments (two containers, images from a
  fleet-wide population) and 30% ConfigMaps, every object's body its own (it carries its uid);
- 31 days of history at a steady change rate: each Deployment changed 7 times (autoscaler
  scale-ups and -downs and two image rollouts, 4 distinct bodies), each ConfigMap once, at
  times spread evenly over the month, so 6.2 stored versions per object (31,000,000 at full
  size) and one day of them past the 30-day retention;
- one telemetry ping every ~2 minutes per cluster over the month (22,000 per cluster,
  11,000,000 at full size), a scan every 4 hours and 100 findings per cluster.

At each step the operator's questions are timed on the loaded size: the distinct-image search
over current manifests and back in time (`--at` a week ago, `--between` the day before that),
the fleet page and a cluster page;
with the database's size per stored version and per ping. At the last step the daily purge runs
while an ingest loop stages, applies and pings, and the ingest's p99 is compared with the same
loop without the purge; then every foreign key is checked (the load does not check them row by
row). Cost against size is plotted to fleet-scale.png beside the run's results (docs/ for a
published run, the `--out` directory otherwise; full mode only).

`K8SMON_BENCH_FLEET_CLUSTERS` caps the fleet (a smaller run on a busy machine; the figures then
say the size they were measured at); `K8SMON_BENCH_FLEET_LOADERS` sets the loader processes (3);
`K8SMON_BENCH_FLEET_DATABASE` names the database.

Disk guard: the database server shares its disk with whatever else runs there (a full disk
stops PostgreSQL). Before each step's load the step's growth is projected from the database's
bytes per cluster measured so far (before the first step: an estimate from the published runs)
and compared with the free space on the disk of the server's data directory (when the server
is local and its directory can be seen; else the root filesystem's); if the step would leave
less than `K8SMON_BENCH_FLEET_MIN_FREE_GIB` (10 GiB) free, the run stops at the size loaded,
measures the purge there and says so in its figures.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench import fleet_load
from bench.databases import drop_database, recreate_database
from bench.harness import Figure, timed
from bench.operator import IMAGE_PATH, distinct_image_search, signed_in_client

AREA = "fleet-scale"
# Two runs on one server must not drop each other's database: K8SMON_BENCH_FLEET_DATABASE.
DB_NAME = os.environ.get("K8SMON_BENCH_FLEET_DATABASE", "k8smon_bench_fleet")
OBJECTS_PER_CLUSTER = 10_000
FULL_STEPS = (25, 50, 100, 250, 500)  # clusters loaded so far when each step is measured
HISTORY_DAYS = 31  # one day more than the retention, for the daily purge to remove
RETENTION_DAYS = 30
AT_DAYS_AGO = 7  # the time-travel search's instant
BETWEEN_WINDOW = timedelta(days=1)  # `--between` the day before that instant and it
PINGS_PER_CLUSTER = 22_000  # one every ~2 minutes for 31 days
SCANS_PER_CLUSTER = 186  # every 4 hours
FINDINGS_PER_CLUSTER = 100
SLOW_SEARCH_S = 30.0  # a search slower than this is timed once per step (after its warm run)
PLOT = "fleet-scale.png"  # beside the run's results (docs/ for a published run, else --out)
SEARCH_TARGET_S, PAGE_TARGET_S, PURGE_P99_TARGET_S = 2.0, 0.3, 0.5
SIZE_TABLES = ("manifest_versions", "manifest_bodies", "objects")
# Disk guard: free space a step's load must leave on the database server's disk, and the
# bytes per full-size cluster assumed before the first step has measured any (the published
# 400-cluster run: 43.0 GiB, 110 MiB a cluster, before the day summaries added about 12%).
MIN_FREE_BYTES = int(float(os.environ.get("K8SMON_BENCH_FLEET_MIN_FREE_GIB") or 10) * 2**30)
ESTIMATED_BYTES_PER_CLUSTER = 125 * 2**20
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
PRESENCE_TABLES = (
    "body_images",
    "image_groups",
    "image_changes",
    "image_present",
    "image_checkpoints",
    "image_checkpoint_slots",
    "image_values",
    "image_derived_days",
    "image_checkpoint_values",
    "image_day_changes",
    "image_hour_changes",
    "image_day_events",
)
# The day summaries the searches read (`store.presence_days`): from the checkpoint before the
# `--between` period on (the daily purge derives the days after).
SUMMARISED = (timedelta(days=AT_DAYS_AGO + 2), timedelta(0))


@dataclass(frozen=True, slots=True)
class FleetShape:
    """What one cluster holds and how long the history is (full size unless a test shrinks it)."""

    objects: int = OBJECTS_PER_CLUSTER
    days: int = HISTORY_DAYS
    pings: int = PINGS_PER_CLUSTER
    scans: int = SCANS_PER_CLUSTER
    findings: int = FINDINGS_PER_CLUSTER


@dataclass
class Step:
    """The figures measured with `clusters` clusters loaded."""

    clusters: int
    load: fleet_load.LoadTimes
    objects: int
    versions: int
    bodies: int
    pings: int
    search_s: tuple[float, ...]
    at_search_s: tuple[float, ...]
    between_search_s: tuple[float, ...]
    fleet_page_s: tuple[float, ...]
    cluster_page_s: tuple[float, ...]
    bytes_per_version: float
    bytes_per_ping: float
    database_bytes: int
    distinct_images: int = 0
    at_distinct_images: int = 0
    load_average: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def load_s(self) -> float:
        return self.load.total_s


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _bytes(engine: Engine, tables: Sequence[str]) -> int:
    """Table + index + TOAST bytes."""
    with engine.connect() as connection:
        return sum(
            int(
                connection.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar_one()
            )
            for t in tables
        )


def _size_tables(engine: Engine) -> tuple[str, ...]:
    """The tables a stored version costs: with the image-occurrence index and image presence
    (groups, over time, now and at checkpoints) when the schema has them."""
    with engine.connect() as connection:
        present = [
            table
            for table in PRESENCE_TABLES
            if connection.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar()
        ]
    return (*SIZE_TABLES, *present)


def _database_bytes(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        )


def _free_bytes_at(path: Path) -> int:
    """Free bytes (for an unprivileged writer) on the filesystem of `path`, or of its nearest
    ancestor this process can see."""
    for candidate in (path, *path.parents):
        try:
            found = os.statvfs(candidate)
        except OSError:
            continue
        return found.f_bavail * found.f_frsize
    return 0


def database_disk_free(url: str) -> int:
    """Free bytes on the disk the database grows on: the filesystem of the server's data
    directory (`SHOW data_directory`) when the server is on this machine, else the root's."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    directory = Path("/")
    if (make_url(url).host or "") in LOCAL_HOSTS:
        try:
            connection = fleet_load.connect(url)
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SHOW data_directory")
                    directory = Path(cursor.fetchone()[0])
            finally:
                connection.close()
        except Exception:  # not allowed to read it (not a superuser): the root's disk
            directory = Path("/")
    return _free_bytes_at(directory)


@dataclass(frozen=True, slots=True)
class DiskProjection:
    """What loading the next step would leave free on the database's disk."""

    loaded: int  # clusters loaded so far
    clusters: int  # clusters after the next step
    bytes_per_cluster: float  # measured so far (or the estimate before the first step)
    free_bytes: int
    reserve_bytes: int

    @property
    def added_bytes(self) -> int:
        return int(self.bytes_per_cluster * (self.clusters - self.loaded))

    @property
    def left_bytes(self) -> int:
        return self.free_bytes - self.added_bytes

    @property
    def fits(self) -> bool:
        return self.left_bytes >= self.reserve_bytes

    def describe(self) -> str:
        gib = 2**30
        return (
            f"stopped at {self.loaded:,} clusters by the disk guard: the step to "
            f"{self.clusters:,} clusters would add about {self.added_bytes / gib:.1f} GiB "
            f"({self.bytes_per_cluster / 2**20:.0f} MiB a cluster) where "
            f"{self.free_bytes / gib:.1f} GiB were free, leaving "
            f"{self.left_bytes / gib:.1f} GiB (under {self.reserve_bytes / gib:.0f} GiB)"
        )


def project_step(
    *,
    loaded: int,
    database_bytes: int,
    clusters: int,
    free_bytes: int,
    shape: FleetShape,
    reserve_bytes: int = MIN_FREE_BYTES,
) -> DiskProjection:
    """The next step's growth, from the whole database's bytes per cluster loaded so far
    (`database_bytes` with `loaded` clusters; before any, the estimate for `shape`), against
    the `free_bytes` on its disk."""
    if loaded:
        per_cluster = database_bytes / loaded
    else:
        per_cluster = ESTIMATED_BYTES_PER_CLUSTER * shape.objects / OBJECTS_PER_CLUSTER
    return DiskProjection(loaded, clusters, per_cluster, free_bytes, reserve_bytes)


def _samples(once: Callable[[], float], *, runs: int) -> tuple[float, ...]:
    """A warm run, then `runs` timed ones — or one when the warm run took over SLOW_SEARCH_S
    (at fleet size a slow search is timed once rather than holding the step for minutes)."""
    warm = once()
    return tuple(once() for _ in range(runs if warm < SLOW_SEARCH_S else 1))


def _page_samples(client: Any, path: str, *, runs: int) -> tuple[float, ...]:
    def get() -> None:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)

    return _samples(lambda: timed(get), runs=runs)


def at_image_search(
    engine: Engine, *, runs: int, window: timedelta = timedelta(0)
) -> tuple[tuple[float, ...], int]:
    """`--distinct` image search `--at` AT_DAYS_AGO days ago (or `--between` the `window`
    before it and it), over the versions current then: seconds of each run and the distinct
    images found."""
    from store.search import Period, run_search  # noqa: PLC0415

    at = datetime.now(UTC) - timedelta(days=AT_DAYS_AGO)
    found = {"values": 0}

    def once() -> float:
        with Session(engine) as session:
            started = time.perf_counter()
            result = run_search(
                session,
                IMAGE_PATH,
                distinct=True,
                limit=100_000,
                timeout_seconds=1800,
                period=Period(at - window, at),
            )
            elapsed = time.perf_counter() - started
        found["values"] = len(result.values)
        return elapsed

    return _samples(once, runs=runs), found["values"]


def _present_search(engine: Engine, *, runs: int) -> tuple[tuple[float, ...], int]:
    first, found = distinct_image_search(engine, runs=1)
    if first[0] >= SLOW_SEARCH_S or runs <= 1:
        return first, found["values"]
    rest, found = distinct_image_search(engine, runs=runs - 1)
    return first + rest, found["values"]


def _load_average() -> float:
    return os.getloadavg()[0]


def measure_step(
    engine: Engine,
    client: Any,
    *,
    clusters: int,
    load: fleet_load.LoadTimes,
    shape: FleetShape,
    runs: int,
) -> Step:
    versions = _count(engine, "manifest_versions")
    load_average = _load_average()
    search_s, distinct = _present_search(engine, runs=runs)
    at_s, at_distinct = at_image_search(engine, runs=runs)
    between_s, _ = at_image_search(engine, runs=runs, window=BETWEEN_WINDOW)
    return Step(
        clusters=clusters,
        load=load,
        objects=clusters * shape.objects,
        versions=versions,
        bodies=_count(engine, "manifest_bodies"),
        pings=clusters * shape.pings,
        search_s=search_s,
        at_search_s=at_s,
        between_search_s=between_s,
        fleet_page_s=_page_samples(client, "/admin/", runs=runs),
        cluster_page_s=_page_samples(client, "/admin/clusters/f0000", runs=runs),
        bytes_per_version=_bytes(engine, _size_tables(engine)) / max(versions, 1),
        bytes_per_ping=_bytes(engine, ("telemetry_pings",)) / max(clusters * shape.pings, 1),
        database_bytes=_database_bytes(engine),
        distinct_images=distinct,
        at_distinct_images=at_distinct,
        load_average=load_average,
    )


def purge_under_ingest(
    engine: Engine, *, baseline_s: float
) -> tuple[list[float], list[float], float, dict[str, int]]:
    """Ingest latencies without and with the daily purge running (the ingest loop in a
    process of its own, `bench.pipeline.measure_ingest`), the purge's seconds and rows."""
    from bench.pipeline import measure_ingest  # noqa: PLC0415
    from store.db import make_session_factory  # noqa: PLC0415
    from workers.services.purge import purge_expired  # noqa: PLC0415

    database_url = engine.url.render_as_string(hide_password=False)
    sessions = make_session_factory(engine)
    quiet, _, _ = measure_ingest(database_url, None, seconds=baseline_s)
    purge: Callable[[], dict[str, int]] = lambda: purge_expired(  # noqa: E731
        sessions, retention_days=RETENTION_DAYS
    )
    busy, purge_s, deleted = measure_ingest(database_url, purge, seconds=0)
    return quiet, busy, purge_s, deleted


def p99(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def plot(steps: Sequence[Step], path: Path) -> None:
    """Median query times and bytes per version against stored versions."""
    import matplotlib  # noqa: PLC0415 - only the benchmark needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    versions = [s.versions / 1e6 for s in steps]
    figure, (times, sizes) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for label, values in (
        ("distinct-image search (current)", [statistics.median(s.search_s) for s in steps]),
        (
            f"distinct-image search --at {AT_DAYS_AGO} days ago",
            [statistics.median(s.at_search_s) for s in steps],
        ),
        (
            f"distinct-image search --between a day {AT_DAYS_AGO} days ago",
            [statistics.median(s.between_search_s) for s in steps],
        ),
        ("fleet page", [statistics.median(s.fleet_page_s) for s in steps]),
        ("cluster page", [statistics.median(s.cluster_page_s) for s in steps]),
    ):
        times.plot(versions, values, marker="o", label=label)
    times.axhline(SEARCH_TARGET_S, color="grey", linestyle="--", label="search target 2 s")
    times.axhline(PAGE_TARGET_S, color="grey", linestyle=":", label="page target 300 ms")
    times.set_xlabel("stored manifest versions (millions)")
    times.set_ylabel("seconds (median)")
    times.set_yscale("log")
    times.grid(True, alpha=0.3)
    times.legend(fontsize=8)
    sizes.plot(versions, [s.bytes_per_version for s in steps], marker="o", label="per version")
    sizes.plot(versions, [s.bytes_per_ping for s in steps], marker="s", label="per ping")
    sizes.set_xlabel("stored manifest versions (millions)")
    sizes.set_ylabel("bytes (tables with indexes and TOAST)")
    whole = sizes.twinx()
    whole.plot(
        versions,
        [s.database_bytes / 2**30 for s in steps],
        color="grey",
        marker="^",
        label="whole database (GiB, right)",
    )
    whole.set_ylabel("database GiB")
    whole.set_ylim(bottom=0)
    whole.legend(fontsize=8, loc="lower right")
    sizes.set_ylim(bottom=0)
    sizes.grid(True, alpha=0.3)
    sizes.legend(fontsize=8)
    figure.suptitle("k8s-monitor at fleet scale: cost against size")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _per_step(steps: Sequence[Step], value: Callable[[Step], float]) -> dict[str, float]:
    return {f"{s.clusters}_clusters": value(s) for s in steps}


def _timed_figure(
    steps: Sequence[Step],
    name: str,
    samples_of: Callable[[Step], tuple[float, ...]],
    *,
    target_s: float,
    note: str = "",
) -> Figure:
    """The last step's samples against the target (judged at full size only), with the
    median of every step in `extra`."""
    last = samples_of(steps[-1])
    target = f"< {target_s:g} s" if target_s >= 1 else f"< {target_s * 1000:g} ms"
    return Figure(
        AREA,
        name,
        "s",
        last,
        target=target,
        met=max(last) < target_s if steps[-1].clusters >= FULL_STEPS[-1] else None,
        note=note,
        extra=_per_step(steps, lambda s: statistics.median(samples_of(s))),
    )


def figures_of(
    steps: Sequence[Step],
    *,
    purge: tuple[list[float], list[float], float, dict[str, int]] | None,
    stopped: DiskProjection | None = None,
) -> list[Figure]:
    """The area's figures from its steps; `stopped`: the disk guard's projection that ended
    the run before its last step (said in the load's and the disk figure's notes)."""
    last = steps[-1]
    size = f"{last.clusters:,} clusters, {last.versions:,} versions"
    full = last.clusters >= FULL_STEPS[-1]
    guard = f"; {stopped.describe()}" if stopped is not None else ""
    figures = [
        Figure(
            AREA,
            f"load ({last.objects:,} current objects, {last.versions:,} "
            f"versions, {last.pings:,} pings)",
            "s",
            (sum(s.load_s for s in steps),),
            note="setup cost, not a target: COPY of generated bodies by "
            f"{fleet_load.loaders()} processes "
            f"({sum(s.load.copy_s for s in steps):,.0f} s), rebuild of the random-key "
            f"secondary indexes after each step "
            f"({sum(s.load.rebuild_s for s in steps):,.0f} s),"
            " image presence checkpoints and day summaries (the groups, changes and present"
            " slots are COPYed"
            f" with the versions; {sum(s.load.presence_s for s in steps):,.0f} s),"
            f" VACUUM ANALYZE ({sum(s.load.vacuum_s for s in steps):,.0f} s); "
            f"{last.bodies:,} distinct bodies; load average at the last step "
            f"{last.load_average:.1f}{guard}",
            extra={
                **_per_step(steps, lambda s: s.load_s),
                **{
                    f"{s.clusters}_clusters_{phase}": getattr(s.load, phase)
                    for s in steps
                    for phase in ("small_rows_s", "copy_s", "rebuild_s", "presence_s", "vacuum_s")
                },
                **{f"{s.clusters}_clusters_load_average": s.load_average for s in steps},
            },
        ),
        _timed_figure(
            steps,
            f"distinct-image search over current manifests ({size})",
            lambda s: s.search_s,
            target_s=SEARCH_TARGET_S,
            note=f"{last.distinct_images:,} distinct images; medians per step in extra",
        ),
        _timed_figure(
            steps,
            f"distinct-image search --at {AT_DAYS_AGO} days ago ({size})",
            lambda s: s.at_search_s,
            target_s=SEARCH_TARGET_S,
            note=f"{last.at_distinct_images:,} distinct images in the versions current then; "
            "medians per step in extra",
        ),
        _timed_figure(
            steps,
            f"distinct-image search --between a one-day window {AT_DAYS_AGO} days ago ({size})",
            lambda s: s.between_search_s,
            target_s=SEARCH_TARGET_S,
            note="the versions current at some instant of the day before the --at instant; "
            "medians per step in extra",
        ),
        _timed_figure(
            steps, f"fleet page ({size})", lambda s: s.fleet_page_s, target_s=PAGE_TARGET_S
        ),
        _timed_figure(
            steps,
            f"cluster page, {last.objects // last.clusters:,} objects ({size})",
            lambda s: s.cluster_page_s,
            target_s=PAGE_TARGET_S,
        ),
        Figure(
            AREA,
            "database bytes per stored manifest version",
            "bytes",
            (last.bytes_per_version,),
            note="versions + bodies + objects (+ body_images and the image presence tables: "
            "groups, changes, present, checkpoints, day summaries) with indexes and TOAST, "
            "per version; "
            f"whole database {last.database_bytes / 2**30:.1f} GiB{guard}",
            extra={
                **_per_step(steps, lambda s: s.bytes_per_version),
                **{f"{s.clusters}_clusters_database_bytes": s.database_bytes for s in steps},
            },
        ),
        Figure(
            AREA,
            "database bytes per telemetry ping",
            "bytes",
            (last.bytes_per_ping,),
            note="telemetry_pings with its indexes",
            extra=_per_step(steps, lambda s: s.bytes_per_ping),
        ),
    ]
    if purge is not None:
        quiet, busy, purge_s, deleted = purge
        figures.append(
            Figure(
                AREA,
                f"ingest p99 during the daily purge ({size})",
                "s",
                (p99(busy),),
                target=f"< {PURGE_P99_TARGET_S * 1000:g} ms",
                met=p99(busy) < PURGE_P99_TARGET_S if full else None,
                note=f"without purge: p99 {p99(quiet) * 1000:.0f} ms; purge took {purge_s:.0f} s "
                f"and deleted {deleted.get('manifest_versions', 0):,} versions and "
                f"{deleted.get('telemetry_pings', 0):,} pings; {len(busy)} ingest operations",
                extra={"purge_s": purge_s, "quiet_p99_s": p99(quiet), **deleted},
            )
        )
    return figures


def run_steps(
    steps: Sequence[int],
    *,
    shape: FleetShape,
    runs: int,
    purge_baseline_s: float | None,
    plot_to: Path | None,
    database: str = DB_NAME,
    free_space: Callable[[str], int] = database_disk_free,
) -> list[Figure]:
    """Load and measure each step (clusters so far), then the purge and the foreign keys.
    Before each step's load the disk guard (`project_step`, `free_space` of the database's
    URL) may stop the run at the size loaded."""
    url = recreate_database(database)
    try:
        from store import migrate  # noqa: PLC0415
        from store.db import make_engine  # noqa: PLC0415

        engine = make_engine(url, pool_size=4)
        migrate.upgrade(engine)
        indexes = fleet_load.index_definitions(url)
        client = signed_in_client(url)
        measured: list[Step] = []
        loaded = 0
        stopped: DiskProjection | None = None
        for clusters in steps:
            projection = project_step(
                loaded=loaded,
                database_bytes=measured[-1].database_bytes if measured else 0,
                clusters=clusters,
                free_bytes=free_space(url),
                shape=shape,
            )
            if not projection.fits:
                stopped = projection
                print(f"   fleet-scale: {projection.describe()}", flush=True)
                break
            load = fleet_load.load_step(
                url,
                lo=loaded,
                hi=clusters,
                shape=fleet_load.ClusterShape(objects=shape.objects, days=shape.days),
                pings=shape.pings,
                scans=shape.scans,
                findings=shape.findings,
                indexes=indexes,
                summarise=SUMMARISED,
            )
            loaded = clusters
            step = measure_step(
                engine, client, clusters=clusters, load=load, shape=shape, runs=runs
            )
            measured.append(step)
            print(f"   fleet-scale: {step}", flush=True)
        if not measured:
            assert stopped is not None
            engine.dispose()
            return [Figure(AREA, "fleet scale", "s", (), note=stopped.describe())]
        purged = (
            purge_under_ingest(engine, baseline_s=purge_baseline_s)
            if purge_baseline_s is not None
            else None
        )
        engine.dispose()
        if plot_to is not None:
            plot(measured, plot_to)
        figures = figures_of(measured, purge=purged, stopped=stopped)
        print(f"   fleet-scale: figures {figures}", flush=True)
        started = time.perf_counter()
        orphans = fleet_load.orphans(url)
        checked_s = time.perf_counter() - started
        figures.append(
            Figure(
                AREA,
                "foreign keys checked after the load (rows pointing nowhere)",
                "rows",
                (float(sum(orphans.values())),),
                target="0",
                met=not any(orphans.values()),
                note=f"one anti-join per foreign key, {checked_s:,.0f} s",
                extra={**orphans, "seconds": checked_s},
            )
        )
        return figures
    finally:
        drop_database(database)


def run(*, quick: bool, out: Path) -> list[Figure]:
    if quick:
        whole = "fleet scale (500 clusters x 10,000 objects)"
        return [Figure(AREA, whole, "s", (), note="full mode only")]
    cap = int(os.environ.get("K8SMON_BENCH_FLEET_CLUSTERS") or FULL_STEPS[-1])
    steps = [s for s in FULL_STEPS if s < cap] + [cap]
    out.mkdir(parents=True, exist_ok=True)
    return run_steps(steps, shape=FleetShape(), runs=5, purge_baseline_s=20.0, plot_to=out / PLOT)
