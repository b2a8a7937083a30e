"""Operator surfaces: `--distinct` image search over 1,000,000 current manifests in
PostgreSQL (target < 2 s), the same search back in time (`--distinct --at` a week ago and
`--distinct --between` the one-day window before it, and the listing of `$..image` over that
window; target < 2 s each), each with one run of the generic evaluation (no image index)
beside it, and the fleet overview page for 1,000 clusters (target < 300 ms).

Builds its own database (`k8smon_bench_operator`, or K8SMON_BENCH_OPERATOR_DATABASE; dropped
and recreated on every run) on the PostgreSQL named by `K8SMON_BENCH_DATABASE_URL` (default:
postgres@127.0.0.1:5432), runs the real migrations, and fills it with SQL (`generate_series`):
70% Deployments with two containers and 30% ConfigMaps, every body distinct (each carries its
own uid), spread over 1,000 clusters; plus telemetry, 10 finished scans and ~100 findings per
cluster. History, as ingest stores it (`manifest_versions`): 3 in 10 Deployments (300,000)
ran two earlier application images (each version its own body), replaced 12-14 and 5-8 days
ago (spread by the hour); every other object has one version; 50,000 objects (1 in 20) were
deleted 6-7 days ago, after 9 days of life. The image index (`body_images`) is filled by
`IMAGE_INDEX_SQL`, proven equal to the product's function in tests/bench/test_operator_index.py;
image presence over time (`image_changes`) by `store.image_presence.backfill`, the function
migration 0011 runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.databases import drop_database, recreate_database
from bench.harness import Figure, repeat, timed

AREA = "operator"
# Two runs on one server must not drop each other's database: K8SMON_BENCH_OPERATOR_DATABASE.
DB_NAME = os.environ.get("K8SMON_BENCH_OPERATOR_DATABASE", "k8smon_bench_operator")
IMAGE_PATH = "$.spec.template.spec.containers[*].image"
CLUSTERS = 1000
HISTORY_DAYS_AGO = 7  # the `--at` instant, and the `--between` window's end


def body_sql(*, version: str = "0") -> str:
    """The body of object `i` (an SQL expression): 70% Deployments with two containers, 30%
    ConfigMaps, each distinct by its uid; `version` (an SQL expression) bumps the image tags and
    the ConfigMap's revision, so every version of an object has a body of its own."""
    return """
      CASE WHEN i % 10 < 7 THEN jsonb_build_object(
        'apiVersion', 'apps/v1', 'kind', 'Deployment',
        'metadata', jsonb_build_object('name', 'app-' || i, 'namespace', 'ns-' || (i % 50),
          'uid', md5('u' || i), 'labels', jsonb_build_object('app', 'app-' || (i % 5000),
          'team', 'team-' || (i % 40))),
        'spec', jsonb_build_object('replicas', 1 + i % 5,
          'selector', jsonb_build_object('matchLabels', jsonb_build_object('app', 'app-' || i)),
          'template', jsonb_build_object(
            'metadata', jsonb_build_object('labels', jsonb_build_object('app', 'app-' || i)),
            'spec', jsonb_build_object('containers', jsonb_build_array(
              jsonb_build_object('name', 'main',
                'image', 'registry.example/team-' || (i % 40) || '/app-' || (i % 2000)
                         || '\\:1.' || (i % 7 + {v}),
                'ports', jsonb_build_array(jsonb_build_object('containerPort', 8080)),
                'resources', jsonb_build_object(
                  'requests', jsonb_build_object('cpu', '100m', 'memory', '128Mi'),
                  'limits', jsonb_build_object('memory', '256Mi'))),
              jsonb_build_object('name', 'proxy',
                'image', 'registry.example/mesh/proxy\\:1.' || ((i + {v}) % 3),
                'securityContext', jsonb_build_object('runAsNonRoot', true)))))))
      ELSE jsonb_build_object(
        'apiVersion', 'v1', 'kind', 'ConfigMap',
        'metadata', jsonb_build_object('name', 'cfg-' || i, 'namespace', 'ns-' || (i % 50),
          'uid', md5('u' || i)),
        'data', jsonb_build_object('settings.yaml', repeat('key: value' || chr(10), 8),
          'revision', ({v})::text))
      END""".replace("{v}", version)


# The image index (`body_images`, store.image_index) of the bodies `body_sql` makes, in SQL:
# their only members named `image` are those of the pod template's `containers`, in array
# order. tests/bench/test_operator_index.py proves the rows equal to what
# `store.image_index.index_bodies` (the function ingest calls) computes for the same bodies.
IMAGE_INDEX_SQL = """
    INSERT INTO body_images (content_hash, ord, shape, value)
    SELECT b.content_hash, (c.n - 1)::int, '."spec"."template"."spec"."containers"[]."image"',
           c.value -> 'image'
    FROM manifest_bodies b
    CROSS JOIN LATERAL jsonb_array_elements(b.body #> '{spec,template,spec,containers}')
        WITH ORDINALITY AS c(value, n)
    WHERE b.body ->> 'kind' = 'Deployment' AND c.value ? 'image'
    ON CONFLICT DO NOTHING
    """

FILL_SQL = (
    """
    INSERT INTO clusters (id, display_name, team, channel, labels, status, created_at,
                          last_telemetry_at)
    SELECT 'c' || lpad(c::text, 4, '0'), 'cluster ' || c, 'team-' || (c % 40), NULL,
           jsonb_build_object('env', CASE WHEN c % 3 = 0 THEN 'prod' ELSE 'staging' END),
           'active', now(), now() - make_interval(mins => c % 30)
    FROM generate_series(0, :clusters - 1) AS c
    """,
    """
    INSERT INTO manifest_bodies (content_hash, body, size_bytes, created_at)
    SELECT md5('b' || i) || md5('c' || i), """
    + body_sql()
    + """, 700, now()
    FROM generate_series(1, :objects) AS i
    """,
    """
    INSERT INTO objects (cluster_id, ref_key, api_version, kind, namespace, name, uid,
                         first_seen, last_seen, current_hash)
    SELECT 'c' || lpad((i % :clusters)::text, 4, '0'),
      CASE WHEN i % 10 < 7 THEN 'apps/v1|Deployment|ns-' || (i % 50) || '|app-' || i
           ELSE 'v1|ConfigMap|ns-' || (i % 50) || '|cfg-' || i END,
      CASE WHEN i % 10 < 7 THEN 'apps/v1' ELSE 'v1' END,
      CASE WHEN i % 10 < 7 THEN 'Deployment' ELSE 'ConfigMap' END,
      'ns-' || (i % 50), CASE WHEN i % 10 < 7 THEN 'app-' || i ELSE 'cfg-' || i END,
      md5('u' || i), now() - interval '25 days', now(), md5('b' || i) || md5('c' || i)
    FROM generate_series(1, :objects) AS i
    """,
    """
    INSERT INTO telemetry_pings (cluster_id, received_at, agent_version, kubernetes_version,
                                 platform, node_count, namespace_count, object_count,
                                 object_counts, errors, details)
    SELECT c.id, now() - make_interval(mins => (p * 5 + (row_number() OVER ()) % 30)::int),
           '0.1.' || (p % 3), 'v1.3' || (p % 2), 'eks', 3 + p, 50, 1000, '{}'::jsonb,
           CASE WHEN c.id LIKE '%7' THEN '{"Secret": "forbidden"}'::jsonb ELSE '{}'::jsonb END,
           '{}'::jsonb
    FROM clusters c CROSS JOIN generate_series(0, 9) AS p
    """,
    """
    INSERT INTO scan_runs (cluster_id, trigger, state, started_at, finished_at, duration_s,
                           object_count, shard_count, counts, errors)
    SELECT c.id, 'schedule', 'done', now() - make_interval(hours => 4 * s),
           now() - make_interval(hours => 4 * s) + interval '20 seconds', 20, 1000, 1,
           jsonb_build_object('new', s % 4, 'open', 80 + (s * 7) % 20, 'resolved', s % 3),
           '[]'::jsonb
    FROM clusters c CROSS JOIN generate_series(1, 10) AS s
    """,
    """
    INSERT INTO findings (cluster_id, fingerprint, rule_id, api_version, kind, namespace, name,
                          container, path, content_hash, severity, message, status,
                          first_seen, last_seen, details)
    SELECT c.id, md5(c.id || f), 'KM-1' || lpad((f % 30)::text, 2, '0'), 'apps/v1',
           'Deployment', 'ns-' || (f % 50), 'app-' || f, 'main',
           'spec.template.spec.containers[0].securityContext', NULL,
           (ARRAY['critical', 'high', 'medium', 'low', 'info'])[1 + f % 5],
           'benchmark finding', (ARRAY['new', 'open', 'open', 'resolved', 'exempted'])[1 + f % 5],
           now(), now(), '{}'::jsonb
    FROM clusters c CROSS JOIN generate_series(1, 100) AS f
    """,
    # History: 3 in 10 Deployments ran two earlier application images (each version its own
    # body, tagged `-older` then `-old`): the first from 25 days ago until 12 to 14 days ago,
    # the second until 5 to 8 days ago (spread by the hour over the objects), then the current
    # one; every other object's only version is its current one, from 20 days ago.
    """
    INSERT INTO manifest_bodies (content_hash, body, size_bytes, created_at)
    SELECT md5(e.tag || o.current_hash) || md5(e.tag || 'x' || o.current_hash),
           jsonb_set(b.body, '{spec,template,spec,containers,0,image}',
                     to_jsonb((b.body #>> '{spec,template,spec,containers,0,image}') || e.tag)),
           700, now()
    FROM objects o JOIN manifest_bodies b ON b.content_hash = o.current_hash
    CROSS JOIN (VALUES ('-old'), ('-older')) AS e(tag)
    WHERE o.kind = 'Deployment' AND o.id % 10 < 3
    """,
    """
    INSERT INTO manifest_versions (object_id, content_hash, first_seen, last_seen, superseded_at)
    SELECT o.id, md5(e.tag || o.current_hash) || md5(e.tag || 'x' || o.current_hash),
           e.since, e.until, e.until
    FROM objects o
    CROSS JOIN LATERAL (VALUES
        ('-older', now() - interval '25 days',
         now() - interval '12 days' - make_interval(hours => (o.id % 48)::int)),
        ('-old', now() - interval '12 days' - make_interval(hours => (o.id % 48)::int),
         now() - interval '5 days' - make_interval(hours => (o.id % 72)::int))
    ) AS e(tag, since, until)
    WHERE o.kind = 'Deployment' AND o.id % 10 < 3
    """,
    """
    INSERT INTO manifest_versions (object_id, content_hash, first_seen, last_seen, superseded_at)
    SELECT o.id, o.current_hash,
           CASE WHEN o.kind = 'Deployment' AND o.id % 10 < 3
                THEN now() - interval '5 days' - make_interval(hours => (o.id % 72)::int)
                ELSE now() - interval '20 days' END,
           now(), NULL
    FROM objects o
    """,
    # 50,000 objects (1 in 20) deleted 6 to 7 days ago, after 9 days of life.
    """
    INSERT INTO objects (cluster_id, ref_key, api_version, kind, namespace, name, uid,
                         first_seen, last_seen, deleted_at, current_hash)
    SELECT o.cluster_id, concat_ws('|', o.api_version, o.kind, o.namespace, 'gone-' || o.name),
           o.api_version, o.kind, o.namespace, 'gone-' || o.name, md5('g' || o.uid),
           now() - interval '15 days' - make_interval(hours => (o.id % 24)::int),
           now() - interval '6 days' - make_interval(hours => (o.id % 24)::int),
           now() - interval '6 days' - make_interval(hours => (o.id % 24)::int),
           o.current_hash
    FROM objects o WHERE o.id <= :deleted
    """,
    """
    INSERT INTO manifest_versions (object_id, content_hash, first_seen, last_seen, superseded_at)
    SELECT o.id, o.current_hash, o.first_seen, o.deleted_at, o.deleted_at
    FROM objects o WHERE o.deleted_at IS NOT NULL
    """,
    IMAGE_INDEX_SQL,
)


def _fill(url: str, *, objects: int) -> float:
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from store import image_presence, migrate  # noqa: PLC0415
    from store.db import make_engine  # noqa: PLC0415

    engine = make_engine(url)
    migrate.upgrade(engine)
    started = time.perf_counter()
    with engine.begin() as connection:
        for statement in FILL_SQL:
            connection.execute(
                text(statement),
                {"clusters": CLUSTERS, "objects": objects, "deleted": objects // 20},
            )
        # Image presence over time: the function migration 0011 backfills with, over the
        # versions and index rows just written.
        image_presence.backfill(Session(bind=connection))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def distinct_image_search(engine: Any, *, runs: int) -> tuple[tuple[float, ...], dict[str, int]]:
    """Seconds of each `--distinct` image search after one warming run (the steady state, not
    the first disk read), and what the last one found: distinct values and container slots."""
    found: dict[str, int] = {}

    def once() -> float:
        elapsed, result = _search_once(engine, IMAGE_PATH, distinct=True)
        found["values"] = len(result.values)
        found["objects"] = sum(v.occurrences for v in result.values)
        return elapsed

    once()
    return repeat(once, runs=runs), found


def _search_once(
    engine: Any, path: str, *, distinct: bool, period: Any = None
) -> tuple[float, Any]:
    """Seconds of one search as the admin API runs it (`store.search.run_search`), and its
    result: `--distinct` lists up to 100,000 values, a listing up to 500 matches."""
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from store.search import run_search  # noqa: PLC0415

    with Session(engine) as session:
        started = time.perf_counter()
        result = run_search(
            session,
            path,
            distinct=distinct,
            limit=100_000 if distinct else 500,
            timeout_seconds=600,
            period=period,
        )
        return time.perf_counter() - started, result


@contextmanager
def generic_evaluation() -> Iterator[None]:
    """Searches without the image index: `store.search` recognises no path, so it evaluates
    the path on every body as it did before the index (the figure the index replaced)."""
    import store.search  # noqa: PLC0415

    recognise = store.search.recognise
    store.search.recognise = lambda _path: None
    try:
        yield
    finally:
        store.search.recognise = recognise


def _generic_seconds(engine: Any, path: str, *, distinct: bool, period: Any = None) -> float:
    """One run of the same search by the generic evaluation, after the indexed runs."""
    with generic_evaluation():
        return _search_once(engine, path, distinct=distinct, period=period)[0]


def _history_figures(url: str, *, objects: int, runs: int, floor: float) -> list[Figure]:
    """The search back in time, over the versions current then: `--distinct` at an instant
    a week ago, `--distinct` over a one-day window before it, and the listing of every
    version of that window that ran an image (`$..image`, the first 500). Floor: the present
    `--distinct` search of the same run, over the live manifests."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from store.db import make_engine  # noqa: PLC0415
    from store.search import Period  # noqa: PLC0415

    engine = make_engine(url)
    end = datetime.now(UTC) - timedelta(days=HISTORY_DAYS_AGO)
    window = Period(end - timedelta(days=1), end)
    asked = {
        "at": (Period(end, end), IMAGE_PATH, True),
        "between": (window, IMAGE_PATH, True),
        "between-list": (window, "$..image", False),
    }
    labels = {
        "at": f"--distinct image search --at {HISTORY_DAYS_AGO} days ago",
        "between": "--distinct image search --between a one-day window",
        "between-list": "image search ($..image) --between a one-day window, first 500 versions",
    }
    figures = []
    for name, (period, path, distinct) in asked.items():
        found: dict[str, int] = {}

        def measure(
            period: Any = period,
            path: str = path,
            distinct: bool = distinct,
            found: dict[str, int] = found,
        ) -> float:
            elapsed, result = _search_once(engine, path, distinct=distinct, period=period)
            found["values"] = len(result.values)
            found["slots"] = sum(v.occurrences for v in result.values)
            found["clusters"] = max((v.clusters for v in result.values), default=0)
            found["matches"] = len(result.matches)
            return elapsed

        measure()  # warm the cache, as for the present search
        samples = repeat(measure, runs=runs)
        generic = _generic_seconds(engine, path, distinct=distinct, period=period)
        note = (
            f"{found['values']:,} distinct images in {found['slots']:,} container slots of the "
            "versions current then; image presence over time (image_changes)"
            if distinct
            else f"{found['matches']:,} versions listed (limit 500, ordered by cluster and object);"
            " image index (body_images)"
        )
        figures.append(
            _search_seconds(
                f"{labels[name]}, {objects:,} manifests with history",
                samples,
                objects=objects,
                note=f"{note}; the generic evaluation took {generic:.2f} s (1 run)",
                floor=floor,
                floor_of="the present --distinct image search, same run",
                extra={"generic_s": generic},
            )
        )
    engine.dispose()
    return figures


def _search_figure(url: str, *, objects: int, runs: int) -> Figure:
    from store.db import make_engine  # noqa: PLC0415

    engine = make_engine(url)
    samples, found = distinct_image_search(engine, runs=runs)
    generic = _generic_seconds(engine, IMAGE_PATH, distinct=True)
    engine.dispose()
    return _search_seconds(
        f"--distinct image search, {objects:,} current manifests",
        samples,
        objects=objects,
        note=f"image presence over time (image_changes); {found['values']:,} distinct images in "
        f"{found['objects']:,} container slots; the generic evaluation (jsonb_path_query) "
        f"took {generic:.2f} s (1 run)",
        extra={"generic_s": generic},
    )


def _search_seconds(
    name: str,
    samples: tuple[float, ...],
    *,
    objects: int,
    note: str,
    floor: float | None = None,
    floor_of: str = "",
    extra: dict[str, float] | None = None,
) -> Figure:
    """A search's figure: target < 2 s, judged at the full size (1,000,000 manifests) only."""
    target = 2.0
    return Figure(
        AREA,
        name,
        "s",
        samples,
        target=f"< {target:g} s (1,000,000 manifests)",
        met=(max(samples) < target) if objects >= 1_000_000 else None,
        note=note,
        floor=floor,
        floor_of=floor_of,
        extra=extra or {},
    )


def signed_in_client(url: str) -> Any:
    """A test client of the real app on the database at `url`, signed in as a viewer."""
    from ingest.app import create_app  # noqa: PLC0415
    from settings import Settings  # noqa: PLC0415
    from store.accounts import create_account  # noqa: PLC0415
    from store.db import make_engine, make_session_factory  # noqa: PLC0415

    sessions = make_session_factory(make_engine(url))
    with sessions() as session:
        create_account(session, "bench", password="benchmark password", role="viewer")
        session.commit()
    settings = Settings(database_url=url, secret_key="b" * 48)
    app = create_app(settings, store=sessions, dispatch=lambda *_a, **_k: None)
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/admin/login",
        data={"username": "bench", "password": "benchmark password", "csrf_token": token},
    )
    return client


def _fleet_figure(url: str, *, runs: int) -> Figure:
    client = signed_in_client(url)
    sizes: dict[str, int] = {}

    def once() -> float:
        def get() -> None:
            answer = client.get("/admin/")
            assert answer.status_code == 200, answer.status_code
            sizes["bytes"] = len(answer.data)

        return timed(get)

    once()
    samples = repeat(once, runs=runs)
    target = 0.3
    return Figure(
        AREA,
        f"fleet overview page, {CLUSTERS:,} clusters",
        "s",
        samples,
        target=f"< {target * 1000:g} ms",
        met=max(samples) < target,
        note=f"server-side render incl. sign-in check, {sizes['bytes'] // 1024} KiB HTML; "
        "100k findings, 10k pings, 10k scans",
    )


def run(*, quick: bool, out: Path) -> list[Figure]:
    objects = 50_000 if quick else 1_000_000
    runs = 3 if quick else 5
    url = recreate_database(DB_NAME)
    try:
        fill_s = _fill(url, objects=objects)
        present = _search_figure(url, objects=objects, runs=runs)
        figures = [
            present,
            *_history_figures(url, objects=objects, runs=runs, floor=present.median),
            _fleet_figure(url, runs=runs),
        ]
    finally:
        drop_database(DB_NAME)
    return [
        Figure(
            AREA,
            f"bench data load ({objects:,} manifests)",
            "s",
            (fill_s,),
            note="setup cost, not a target",
        ),
        *figures,
    ]
