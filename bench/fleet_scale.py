"""Fleet scale (full mode only): 500 clusters x 10,000 objects with a month of history.

The scale of the system this project follows (29 million manifest versions scanned, 11 million
telemetry pings), loaded in steps into a database of its own (`k8smon_bench_fleet`, migrated by
the real migrations, dropped afterwards) by the fastest honest path, SQL `generate_series`:

- every cluster holds 10,000 current objects, 70% Deployments (two containers) and 30%
  ConfigMaps, every body distinct (each carries its object's uid and its version);
- 31 days of history at a steady change rate: each Deployment changed 7 times (a new image tag
  each time), each ConfigMap once, at times spread evenly over the month, so 6.2 stored versions
  per object (31,000,000 at full size) and one day of them past the 30-day retention;
- one telemetry ping every ~2 minutes per cluster over the month (22,000 per cluster,
  11,000,000 at full size), a scan every 4 hours and 100 findings per cluster.

At each step the operator's questions are timed on the loaded size: the distinct-image search
over current manifests, the fleet page and a cluster page; with the database's size per stored
version and per ping. At full size the daily purge runs while an ingest loop stages, applies
and pings, and the ingest's p99 is compared with the same loop without the purge. Cost against
size is plotted to docs/fleet-scale.png (full mode only).

`K8SMON_BENCH_FLEET_CLUSTERS` caps the fleet (a smaller run on a busy machine; the figures then
say the size they were measured at).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bench.databases import drop_database, recreate_database
from bench.harness import Figure, repeat, timed
from bench.operator import body_sql, distinct_image_search, signed_in_client

AREA = "fleet-scale"
DB_NAME = "k8smon_bench_fleet"
OBJECTS_PER_CLUSTER = 10_000
FULL_STEPS = (25, 50, 100, 250, 500)  # clusters loaded so far when each step is measured
HISTORY_DAYS = 31  # one day more than the retention, for the daily purge to remove
RETENTION_DAYS = 30
PINGS_PER_CLUSTER = 22_000  # one every ~2 minutes for 31 days
SCANS_PER_CLUSTER = 186  # every 4 hours
FINDINGS_PER_CLUSTER = 100
LOAD_CHUNK = 5  # clusters per load transaction
PLOT = Path(__file__).resolve().parent.parent / "docs" / "fleet-scale.png"
SEARCH_TARGET_S, PAGE_TARGET_S, PURGE_P99_TARGET_S = 2.0, 0.3, 0.5
SIZE_TABLES = ("manifest_versions", "manifest_bodies", "objects")

# Object i (global, from 0) of cluster c = i // objects; Deployments are i % 10 < 7. A Deployment
# has 8 versions (7 changes), a ConfigMap 2 (1 change); change k (1-based) of an object with n
# changes happens at start + days * (k - 1 + phase) / n, phase = (i % 97) / 97, so changes are
# spread evenly over the month. Version k of object i has id i * 8 + k + 1.
LOAD_SQL = (
    """
    INSERT INTO clusters (id, display_name, team, channel, labels, status, created_at,
                          last_telemetry_at)
    SELECT 'f' || lpad(c::text, 4, '0'), 'fleet cluster ' || c, 'team-' || (c % 40), NULL,
           jsonb_build_object('env', CASE WHEN c % 3 = 0 THEN 'prod' ELSE 'staging' END),
           'active', now() - make_interval(days => :days), now() - make_interval(mins => c % 2)
    FROM generate_series(:lo, :hi - 1) AS c
    """,
    """
    CREATE TEMPORARY TABLE fleet_versions ON COMMIT DROP AS
    SELECT i, k, n, (i / :objects) AS c, i % 10 < 7 AS deployment,
           now() - make_interval(days => :days) AS start,
           CASE WHEN k = 0 THEN now() - make_interval(days => :days)
                ELSE now() - make_interval(days => :days)
                     + make_interval(secs => :days * 86400.0 * (k - 1 + (i % 97) / 97.0) / n)
           END AS first_seen,
           CASE WHEN k = n THEN NULL
                ELSE now() - make_interval(days => :days)
                     + make_interval(secs => :days * 86400.0 * (k + (i % 97) / 97.0) / n)
           END AS superseded_at
    FROM generate_series(:lo * :objects, :hi * :objects - 1) AS i
    CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 < 7 THEN 7 ELSE 1 END AS n) AS changes
    CROSS JOIN LATERAL generate_series(0, changes.n) AS k
    """,
    """
    INSERT INTO manifest_bodies (content_hash, body, size_bytes, created_at)
    SELECT md5('b' || i || '.' || k) || md5('c' || i || '.' || k),
    """
    + body_sql(version="k")
    + """, 700, first_seen
    FROM fleet_versions
    """,
    """
    INSERT INTO objects (id, cluster_id, ref_key, api_version, kind, namespace, name, uid,
                         first_seen, last_seen, current_hash, current_version_id)
    SELECT i + 1, 'f' || lpad(c::text, 4, '0'),
      CASE WHEN deployment THEN 'apps/v1|Deployment|ns-' || (i % 50) || '|app-' || i
           ELSE 'v1|ConfigMap|ns-' || (i % 50) || '|cfg-' || i END,
      CASE WHEN deployment THEN 'apps/v1' ELSE 'v1' END,
      CASE WHEN deployment THEN 'Deployment' ELSE 'ConfigMap' END,
      'ns-' || (i % 50), CASE WHEN deployment THEN 'app-' || i ELSE 'cfg-' || i END,
      md5('u' || i), start, now(), md5('b' || i || '.' || k) || md5('c' || i || '.' || k),
      i * 8 + k + 1
    FROM fleet_versions WHERE k = n
    """,
    """
    INSERT INTO manifest_versions (id, object_id, content_hash, first_seen, last_seen,
                                   superseded_at)
    SELECT i * 8 + k + 1, i + 1, md5('b' || i || '.' || k) || md5('c' || i || '.' || k),
           first_seen, coalesce(superseded_at, now()), superseded_at
    FROM fleet_versions
    """,
    """
    INSERT INTO telemetry_pings (cluster_id, received_at, agent_version, kubernetes_version,
                                 platform, node_count, namespace_count, object_count,
                                 object_counts, errors, details)
    SELECT 'f' || lpad(c::text, 4, '0'),
           now() - make_interval(secs => p * (:days * 86400.0 / :pings) + c % 60),
           '0.1.' || (p % 3), 'v1.3' || (c % 2), 'eks', 3 + c % 20, 50, :objects,
           '{}'::jsonb, '{}'::jsonb, '{}'::jsonb
    FROM generate_series(:lo, :hi - 1) AS c CROSS JOIN generate_series(0, :pings - 1) AS p
    """,
    """
    INSERT INTO scan_runs (cluster_id, trigger, state, started_at, finished_at, duration_s,
                           object_count, shard_count, counts, errors)
    SELECT 'f' || lpad(c::text, 4, '0'), 'schedule', 'done',
           now() - make_interval(hours => 4 * s), now() - make_interval(hours => 4 * s)
           + interval '20 seconds', 20, :objects, 10,
           jsonb_build_object('new', s % 4, 'open', 80 + (s * 7) % 20, 'resolved', s % 3),
           '[]'::jsonb
    FROM generate_series(:lo, :hi - 1) AS c CROSS JOIN generate_series(1, :scans) AS s
    """,
    """
    INSERT INTO findings (cluster_id, fingerprint, rule_id, api_version, kind, namespace, name,
                          container, path, content_hash, severity, message, status,
                          first_seen, last_seen, details)
    SELECT 'f' || lpad(c::text, 4, '0'), md5(c || '.' || f), 'KM-1' || lpad((f % 30)::text, 2,
           '0'), 'apps/v1', 'Deployment', 'ns-' || (f % 50), 'app-' || (c * :objects + f * 10),
           'main', 'spec.template.spec.containers[0].securityContext', NULL,
           (ARRAY['critical', 'high', 'medium', 'low', 'info'])[1 + f % 5],
           'benchmark finding', (ARRAY['new', 'open', 'open', 'resolved', 'exempted'])[1 + f % 5],
           now() - make_interval(days => f % 30), now(), '{}'::jsonb
    FROM generate_series(:lo, :hi - 1) AS c CROSS JOIN generate_series(1, :findings) AS f
    """,
)
SEQUENCES = ("objects", "manifest_versions")


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
    load_s: float
    objects: int
    versions: int
    pings: int
    search_s: tuple[float, ...]
    fleet_page_s: tuple[float, ...]
    cluster_page_s: tuple[float, ...]
    bytes_per_version: float
    bytes_per_ping: float
    distinct_images: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def load(engine: Engine, *, lo: int, hi: int, shape: FleetShape) -> float:
    """Add clusters lo..hi-1 with their history; seconds taken (including VACUUM ANALYZE)."""
    started = time.perf_counter()
    for first in range(lo, hi, LOAD_CHUNK):
        parameters = {
            "lo": first,
            "hi": min(first + LOAD_CHUNK, hi),
            "objects": shape.objects,
            "days": shape.days,
            "pings": shape.pings,
            "scans": shape.scans,
            "findings": shape.findings,
        }
        with engine.begin() as connection:
            for statement in LOAD_SQL:
                connection.execute(text(statement), parameters)
    with engine.begin() as connection:
        for table in SEQUENCES:
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _bytes(engine: Engine, tables: Sequence[str]) -> int:
    """Table + index + TOAST bytes."""
    with engine.connect() as connection:
        return sum(
            int(connection.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar())
            for t in tables
        )


def _page_samples(client: Any, path: str, *, runs: int) -> tuple[float, ...]:
    def get() -> None:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)

    timed(get)
    return repeat(lambda: timed(get), runs=runs)


def measure_step(engine: Engine, client: Any, *, clusters: int, load_s: float, runs: int) -> Step:
    versions, pings = _count(engine, "manifest_versions"), _count(engine, "telemetry_pings")
    objects = _count(engine, "objects")
    search_s, found = distinct_image_search(engine, runs=runs)
    return Step(
        clusters=clusters,
        load_s=load_s,
        objects=objects,
        versions=versions,
        pings=pings,
        search_s=search_s,
        fleet_page_s=_page_samples(client, "/admin/", runs=runs),
        cluster_page_s=_page_samples(client, "/admin/clusters/f0000", runs=runs),
        bytes_per_version=_bytes(engine, SIZE_TABLES) / max(versions, 1),
        bytes_per_ping=_bytes(engine, ("telemetry_pings",)) / max(pings, 1),
        distinct_images=found["values"],
    )


@dataclass
class _Sessions:
    """What `bench.pipeline.ingest_loop` needs of its environment."""

    sessions: sessionmaker[Session]


def purge_under_ingest(
    engine: Engine, *, baseline_s: float
) -> tuple[list[float], list[float], float, dict[str, int]]:
    """Ingest latencies without and with the daily purge running, the purge's seconds and rows."""
    from bench.pipeline import measure_ingest  # noqa: PLC0415
    from store.db import make_session_factory  # noqa: PLC0415
    from workers.services.purge import purge_expired  # noqa: PLC0415

    env = _Sessions(make_session_factory(engine))
    quiet, _, _ = measure_ingest(env, None, seconds=baseline_s)  # type: ignore[arg-type]
    purge: Callable[[], dict[str, int]] = lambda: purge_expired(  # noqa: E731
        env.sessions, retention_days=RETENTION_DAYS
    )
    busy, purge_s, deleted = measure_ingest(env, purge, seconds=0)  # type: ignore[arg-type]
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
    sizes.set_ylabel("database bytes")
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
) -> list[Figure]:
    last = steps[-1]
    size = f"{last.clusters:,} clusters, {last.versions:,} versions"
    full = last.clusters >= FULL_STEPS[-1]
    figures = [
        Figure(
            AREA,
            f"load ({last.objects:,} current objects, {last.versions:,} "
            f"versions, {last.pings:,} pings)",
            "s",
            (sum(s.load_s for s in steps),),
            note="setup cost, not a target: SQL generate_series, then VACUUM ANALYZE",
            extra=_per_step(steps, lambda s: s.load_s),
        ),
        _timed_figure(
            steps,
            f"distinct-image search over current manifests ({size})",
            lambda s: s.search_s,
            target_s=SEARCH_TARGET_S,
            note=f"{last.distinct_images:,} distinct images; medians per step in extra",
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
            note="versions + bodies + objects tables with indexes and TOAST, per version",
            extra=_per_step(steps, lambda s: s.bytes_per_version),
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
) -> list[Figure]:
    url = recreate_database(database)
    try:
        from store import migrate  # noqa: PLC0415
        from store.db import make_engine  # noqa: PLC0415

        engine = make_engine(url, pool_size=4)
        migrate.upgrade(engine)
        client = signed_in_client(url)
        measured: list[Step] = []
        loaded = 0
        for clusters in steps:
            load_s = load(engine, lo=loaded, hi=clusters, shape=shape)
            loaded = clusters
            step = measure_step(engine, client, clusters=clusters, load_s=load_s, runs=runs)
            measured.append(step)
            print(f"   fleet-scale: {measured[-1]}", flush=True)
        purged = (
            purge_under_ingest(engine, baseline_s=purge_baseline_s)
            if purge_baseline_s is not None
            else None
        )
        engine.dispose()
        if plot_to is not None:
            plot(measured, plot_to)
        return figures_of(measured, purge=purged)
    finally:
        drop_database(database)


def run(*, quick: bool) -> list[Figure]:
    if quick:
        whole = "fleet scale (500 clusters x 10,000 objects)"
        return [Figure(AREA, whole, "s", (), note="full mode only")]
    cap = int(os.environ.get("K8SMON_BENCH_FLEET_CLUSTERS") or FULL_STEPS[-1])
    steps = [s for s in FULL_STEPS if s < cap] + [cap]
    return run_steps(steps, shape=FleetShape(), runs=5, purge_baseline_s=20.0, plot_to=PLOT)
