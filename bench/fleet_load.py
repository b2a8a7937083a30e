"""Fleet-scale bulk load: generated manifests and their month of history, COPYed into the
product's real tables (migrated schema, real indexes and constraints).

Worker processes each generate one cluster at a time in Python — every body is the canonical
JSON the product hashes (`contracts.hashing.canonical_json`: sorted keys, compact), stored
under its SHA-256 (`content_hash`), so identical bodies are stored once, as the product stores
them — and stream it with `COPY FROM STDIN` into `manifest_bodies`, `objects` and
`manifest_versions`. Pings, scans, findings and the clusters themselves are small rows and are
made in SQL (`generate_series`).

Around each step's load the secondary indexes on random keys (the
versions' content-hash, last-seen and superseded-at indexes, the pings' received-at index) are
dropped and rebuilt from their own definitions (the rebuild is timed and reported), and the
COPY sessions run with `session_replication_role = replica` (as `pg_restore
--disable-triggers` does): the foreign keys stay defined but are not checked row by row;
`orphans()` checks every one of them in one query each after the load.

Shape of one cluster (`objects` per cluster, default 10,000; object j of cluster c is global
object i = c * objects + j):
- 70% Deployments (j % 10 < 7) with a main container and a mesh sidecar; the main image comes
  from a fleet-wide population (2,000 repositories in 40 teams, tags by rollout wave and
  cluster group) and 1 in 50 runs a cluster-local build; 30% ConfigMaps.
- 31 days of history: a Deployment changes 7 times (the autoscaler scales it up and back
  down three times — back down is the body stored before, stored once —, then two image
  rollouts, the second in the last week): 8 versions, 4 distinct bodies; a ConfigMap changes
  once: 2 versions. Bodies are ~1 KB of canonical JSON (a Deployment's spec with two
  containers, no status: the size the disk budget of 500 clusters allows). Change k of n happens at
  start + days * (k - 1 + phase) / n, phase = (i % 97) / 97, spread evenly over the month.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.hashing import canonical_json

VERSION_SLOTS = 8  # version k of global object i has id i * VERSION_SLOTS + k + 1
# Deployment: (rollout wave, scaled up) per version: the autoscaler scales up and back down
# three times (scaling back returns to the body stored before), then two image rollouts, the
# last one in the final week: 8 versions, 4 distinct bodies.
DEPLOYMENT_STATES = ((0, 0), (0, 1), (0, 0), (0, 1), (0, 0), (0, 1), (1, 0), (2, 0))
CONFIGMAP_STATES = (0, 1)
APPS, TEAMS, NAMESPACES = 2000, 40, 50
# Secondary indexes on random keys: rebuilt after each step's load rather than kept up to date.
REBUILT_INDEXES = (
    "ix_manifest_versions_content_hash",
    "ix_manifest_versions_last_seen",
    "ix_manifest_versions_superseded_at",
    "ix_telemetry_pings_received_at",
    "pk_body_images",  # the image-occurrence index, when the schema has it
)
BODY_COLUMNS = "content_hash, body, size_bytes, created_at"
OBJECT_COLUMNS = (
    "id, cluster_id, ref_key, api_version, kind, namespace, name, uid, first_seen, last_seen, "
    "current_hash, current_version_id"
)
VERSION_COLUMNS = "id, object_id, content_hash, first_seen, last_seen, superseded_at"
IMAGE_COLUMNS = "content_hash, ord, shape, value"
GROUP_COLUMNS = "id, key, cluster_id, kind, namespace, shape, value"
CHANGE_COLUMNS = "group_id, at, started, ended"
PRESENT_COLUMNS = "group_id, cluster_id, kind, namespace, shape, value, slots"
CHECKPOINT_COLUMNS = "at, group_id, slots"
# Image group n of cluster c has id c * GROUP_SLOTS + n + 1 (a cluster has about 4,300).
GROUP_SLOTS = 100_000
# Where a Deployment's container images are, as `store.image_index` writes a shape.
IMAGE_SHAPE = '."spec"."template"."spec"."containers"[]."image"'


def _template(document: dict[str, Any], *, numbers: Sequence[str] = ()) -> str:
    """`str.format` template of `document`'s canonical JSON; string values '@x@' become the
    field {x} (inside the quotes), and for the names in `numbers` the quoted '"@x@"' becomes
    a bare number field."""
    text = canonical_json(document).decode("utf-8").replace("{", "{{").replace("}", "}}")
    for name in numbers:
        text = text.replace(f'"@{name}@"', "{" + name + "}")
    while "@" in text:
        start = text.index("@")
        end = text.index("@", start + 1)
        text = text[:start] + "{" + text[start + 1 : end] + "}" + text[end + 1 :]
    return text


_LABELS = {
    "app.kubernetes.io/name": "@app@",
    "app.kubernetes.io/part-of": "@team@",
    "app.kubernetes.io/instance": "@name@",
    "team": "@team@",
}
DEPLOYMENT = _template(
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "@name@",
            "namespace": "@namespace@",
            "uid": "@uid@",
            "labels": {**_LABELS, "env": "@env@"},
            "annotations": {"deployment.kubernetes.io/revision": "@revision@"},
        },
        "spec": {
            "replicas": "@replicas@",
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "@name@"}},
            "template": {
                "metadata": {"labels": _LABELS},
                "spec": {
                    "serviceAccountName": "@app@",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "main",
                            "image": "@image@",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "env": [{"name": "RELEASE", "value": "@revision@"}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        },
                        {
                            "name": "proxy",
                            "image": "@proxy@",
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        },
                    ],
                },
            },
        },
    },
    numbers=("replicas",),
)
CONFIGMAP = _template(
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "@name@",
            "namespace": "@namespace@",
            "uid": "@uid@",
            "labels": {"app.kubernetes.io/name": "@app@", "team": "@team@"},
        },
        "data": {
            "application.yaml": "server:\n  port: 8080\nlogging:\n  level: info\n"
            "features:\n  cache: @cache@\n  retries: 3\n",
            "revision": "@revision@",
        },
    }
)


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """What one cluster holds and over how many days its history runs."""

    objects: int
    days: int


def cluster_id(c: int) -> str:
    return f"f{c:04d}"


def _uid(i: int) -> str:
    h = (i * 0x9E3779B97F4A7C15) & (2**128 - 1)
    return (
        f"{h >> 96:08x}-{(h >> 80) & 0xFFFF:04x}-4{(h >> 68) & 0xFFF:03x}-{i & 0xFFFF:04x}-{i:012x}"
    )


def deployment_images(c: int, j: int, *, wave: int) -> tuple[str, str]:
    """The main and sidecar images of Deployment j of cluster c in rollout `wave`."""
    app = j % APPS
    if j % 50 == 7:  # a cluster-local build
        image = f"registry.example/{cluster_id(c)}/tool-{j % 10}:0.{wave + j % 4}"
    else:
        image = f"registry.example/team-{app % TEAMS}/app-{app}:1.{app % 9 + wave + c % 3}.{c % 3}"
    return image, f"registry.example/mesh/proxy:1.{20 + c % 4 + wave}"


def deployment_body(c: int, j: int, i: int, *, wave: int, scaled: int) -> str:
    app = j % APPS
    image, proxy = deployment_images(c, j, wave=wave)
    return DEPLOYMENT.format(
        name=f"app-{j}",
        namespace=f"ns-{j % NAMESPACES}",
        uid=_uid(i),
        app=f"app-{app}",
        team=f"team-{app % TEAMS}",
        env="prod" if c % 3 == 0 else "staging",
        revision=str(wave + 1),
        replicas=2 + j % 3 + 2 * scaled,
        image=image,
        proxy=proxy,
    )


def configmap_body(c: int, j: int, i: int, *, revision: int) -> str:
    app = j % APPS
    return CONFIGMAP.format(
        name=f"cfg-{j}",
        namespace=f"ns-{j % NAMESPACES}",
        uid=_uid(i),
        app=f"app-{app}",
        team=f"team-{app % TEAMS}",
        cache="true" if (j + revision) % 2 else "false",
        revision=str(revision + 1),
    )


def _ts(value: datetime) -> str:
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class ClusterRows:
    """COPY text of one cluster's rows, table by table, and how many versions it holds."""

    bodies: str
    objects: str
    versions: str
    images: str
    groups: str
    changes: str
    present: str
    checkpoints: str
    count: int


def cluster_rows(
    c: int, *, shape: ClusterShape, now: datetime, checkpoints: Sequence[datetime] = ()
) -> ClusterRows:
    """Cluster c's bodies, objects, versions, image-index rows (`body_images`, as
    `store.image_index` indexes a body: a Deployment's two container images, in array order;
    a ConfigMap has none) and image presence (`image_groups`, `image_changes` and
    `image_present`, as `store.image_presence` records the versions: each version's images
    begin at its first_seen and end at its superseded_at; and the `image_checkpoint_slots`
    rows of the `checkpoints` already taken, as `count_clusters_in_checkpoints` counts a
    cluster's rows in them: per group, the slots begun and not ended at or before each)."""
    bodies, objects, versions = io.StringIO(), io.StringIO(), io.StringIO()
    images = io.StringIO()
    # (namespace, image) -> instant -> [started, ended]; every image slot is a Deployment's.
    presence: dict[tuple[str, str], dict[str, list[int]]] = {}
    start = now - timedelta(days=shape.days)
    month = shape.days * 86400.0
    cid = cluster_id(c)
    count = 0
    for j in range(shape.objects):
        i = c * shape.objects + j
        phase = (i % 97) / 97
        deployment = j % 10 < 7
        n = len(DEPLOYMENT_STATES) - 1 if deployment else len(CONFIGMAP_STATES) - 1
        times = [start] + [
            start + timedelta(seconds=month * (k - 1 + phase) / n) for k in range(1, n + 1)
        ]
        seen: dict[str, None] = {}
        chash = ""
        for k in range(n + 1):
            if deployment:
                wave, scaled = DEPLOYMENT_STATES[k]
                body = deployment_body(c, j, i, wave=wave, scaled=scaled)
            else:
                body = configmap_body(c, j, i, revision=CONFIGMAP_STATES[k])
            encoded = body.encode("utf-8")
            chash = hashlib.sha256(encoded).hexdigest()
            first = _ts(times[k])
            if chash not in seen:
                seen[chash] = None
                escaped = body.replace("\\", "\\\\")
                bodies.write(f"{chash}\t{escaped}\t{len(encoded)}\t{first}\n")
                if deployment:
                    for ord_, image in enumerate(deployment_images(c, j, wave=wave)):
                        images.write(f'{chash}\t{ord_}\t{IMAGE_SHAPE}\t"{image}"\n')
            # As the product stores them: a version's last_seen is written when it is created
            # and again when it ends (the live ones' is the cluster's state_updated_at).
            ended = _ts(times[k + 1]) if k < n else "\\N"
            last = ended if k < n else first
            if deployment:
                for image in deployment_images(c, j, wave=wave):
                    at = presence.setdefault((f"ns-{j % NAMESPACES}", image), {})
                    at.setdefault(first, [0, 0])[0] += 1
                    if k < n:
                        at.setdefault(ended, [0, 0])[1] += 1
            versions.write(
                f"{i * VERSION_SLOTS + k + 1}\t{i + 1}\t{chash}\t{first}\t{last}\t{ended}\n"
            )
            count += 1
        namespace = f"ns-{j % NAMESPACES}"
        api, kind, name = (
            ("apps/v1", "Deployment", f"app-{j}") if deployment else ("v1", "ConfigMap", f"cfg-{j}")
        )
        objects.write(
            f"{i + 1}\t{cid}\t{api}|{kind}|{namespace}|{name}\t{api}\t{kind}\t{namespace}\t{name}\t"
            f"{_uid(i)}\t{_ts(start)}\t{_ts(start)}\t{chash}\t{i * VERSION_SLOTS + n + 1}\n"
        )
    groups, changes, present, counted = _presence_rows(c, presence, checkpoints=checkpoints)
    return ClusterRows(
        bodies.getvalue(),
        objects.getvalue(),
        versions.getvalue(),
        images.getvalue(),
        groups,
        changes,
        present,
        counted,
        count,
    )


def _presence_rows(
    c: int,
    presence: dict[tuple[str, str], dict[str, list[int]]],
    *,
    checkpoints: Sequence[datetime],
) -> tuple[str, str, str, str]:
    """COPY text of `image_groups`, `image_changes`, `image_present` and
    `image_checkpoint_slots` (for the `checkpoints` given) from cluster c's counts per
    (namespace, image) and instant, keyed as `store.image_presence` keys them."""
    from store.image_presence import group_key  # noqa: PLC0415

    cid = cluster_id(c)
    groups, changes, present = io.StringIO(), io.StringIO(), io.StringIO()
    counted = io.StringIO()
    ordered = sorted(checkpoints)
    for n, ((namespace, image), instants) in enumerate(presence.items()):
        group_id = c * GROUP_SLOTS + n + 1
        key = group_key(cid, "Deployment", namespace, IMAGE_SHAPE, image)
        group = f'{cid}\tDeployment\t{namespace}\t{IMAGE_SHAPE}\t"{image}"'
        groups.write(f"{group_id}\t{key}\t{group}\n")
        slots = 0
        for at, (started, ended) in instants.items():
            changes.write(f"{group_id}\t{at}\t{started}\t{ended}\n")
            slots += started - ended
        if slots:
            present.write(f"{group_id}\t{group}\t{slots}\n")
        if ordered:
            net = sorted(
                (datetime.fromisoformat(at), started - ended)
                for at, (started, ended) in instants.items()
            )
            current, k = 0, 0
            for checkpoint in ordered:  # S(D): the rows at or before D, summed
                while k < len(net) and net[k][0] <= checkpoint:
                    current += net[k][1]
                    k += 1
                if current:
                    counted.write(f"{_ts(checkpoint)}\t{group_id}\t{current}\n")
    return groups.getvalue(), changes.getvalue(), present.getvalue(), counted.getvalue()


def connect(url: str) -> Any:
    """A psycopg2 connection to the SQLAlchemy URL `url`."""
    import psycopg2  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    parsed = make_url(url)
    return psycopg2.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
    )


def _copy_cluster(
    task: tuple[str, int, ClusterShape, datetime, bool, bool, tuple[datetime, ...]],
) -> int:
    url, c, shape, now, indexed, presence, checkpoints = task
    rows = cluster_rows(c, shape=shape, now=now, checkpoints=checkpoints)
    copies = [
        (f"manifest_bodies ({BODY_COLUMNS})", rows.bodies),
        (f"objects ({OBJECT_COLUMNS})", rows.objects),
        (f"manifest_versions ({VERSION_COLUMNS})", rows.versions),
    ]
    if indexed:
        copies.append((f"body_images ({IMAGE_COLUMNS})", rows.images))
    if indexed and presence:
        copies.append((f"image_groups ({GROUP_COLUMNS})", rows.groups))
        copies.append((f"image_changes ({CHANGE_COLUMNS})", rows.changes))
        copies.append((f"image_present ({PRESENT_COLUMNS})", rows.present))
        copies.append((f"image_checkpoint_slots ({CHECKPOINT_COLUMNS})", rows.checkpoints))
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("SET synchronous_commit = off")
            for table, data in copies:
                cursor.copy_expert(f"COPY {table} FROM STDIN", io.StringIO(data))
        connection.commit()
    finally:
        connection.close()
    return rows.count


def has_table(url: str, table: str) -> bool:
    """Whether the schema has `table` (one added by a later migration)."""
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            return bool(cursor.fetchone()[0])
    finally:
        connection.close()


def has_image_index(url: str) -> bool:
    """Whether the schema has the image-occurrence index table (`body_images`)."""
    return has_table(url, "body_images")


SMALL_ROWS_SQL = (
    """
    INSERT INTO clusters (id, display_name, team, channel, labels, status, created_at,
                          state_updated_at, last_telemetry_at)
    SELECT 'f' || lpad(c::text, 4, '0'), 'fleet cluster ' || c, 'team-' || (c %% 40), NULL,
           jsonb_build_object('env', CASE WHEN c %% 3 = 0 THEN 'prod' ELSE 'staging' END),
           'active', %(now)s - make_interval(days => %(days)s), %(now)s,
           %(now)s - make_interval(mins => c %% 2)
    FROM generate_series(%(lo)s, %(hi)s - 1) AS c
    """,
    """
    INSERT INTO telemetry_pings (cluster_id, received_at, agent_version, kubernetes_version,
                                 platform, node_count, namespace_count, object_count,
                                 object_counts, errors, details)
    SELECT 'f' || lpad(c::text, 4, '0'),
           %(now)s - make_interval(secs => p * (%(days)s * 86400.0 / %(pings)s) + c %% 60),
           '0.1.' || (p %% 3), 'v1.3' || (c %% 2), 'eks', 3 + c %% 20, 50, %(objects)s,
           jsonb_build_object('Deployment', %(objects)s * 7 / 10,
                              'ConfigMap', %(objects)s * 3 / 10),
           '{}'::jsonb, '{}'::jsonb
    FROM generate_series(%(lo)s, %(hi)s - 1) AS c CROSS JOIN generate_series(0, %(pings)s - 1) AS p
    """,
    """
    INSERT INTO scan_runs (cluster_id, trigger, state, started_at, finished_at, duration_s,
                           object_count, shard_count, counts, errors)
    SELECT 'f' || lpad(c::text, 4, '0'), 'schedule', 'done',
           %(now)s - make_interval(hours => 4 * s), %(now)s - make_interval(hours => 4 * s)
           + interval '20 seconds', 20, %(objects)s, 10,
           jsonb_build_object('new', s %% 4, 'open', 80 + (s * 7) %% 20, 'resolved', s %% 3),
           '[]'::jsonb
    FROM generate_series(%(lo)s, %(hi)s - 1) AS c CROSS JOIN generate_series(1, %(scans)s) AS s
    """,
    """
    INSERT INTO findings (cluster_id, fingerprint, rule_id, api_version, kind, namespace, name,
                          container, path, content_hash, severity, message, status,
                          first_seen, last_seen, details)
    SELECT 'f' || lpad(c::text, 4, '0'), md5(c || '.' || f),
           'KM-1' || lpad((f %% 30)::text, 2, '0'), 'apps/v1', 'Deployment',
           'ns-' || (f * 10 %% 50), 'app-' || (f * 10), 'main',
           'spec.template.spec.containers[0].securityContext', NULL,
           (ARRAY['critical', 'high', 'medium', 'low', 'info'])[1 + f %% 5],
           'benchmark finding',
           (ARRAY['new', 'open', 'open', 'resolved', 'exempted'])[1 + f %% 5],
           %(now)s - make_interval(days => f %% 30), %(now)s, '{}'::jsonb
    FROM generate_series(%(lo)s, %(hi)s - 1) AS c CROSS JOIN generate_series(1, %(findings)s) AS f
    """,
)


@dataclass(frozen=True, slots=True)
class LoadTimes:
    """Seconds one step's load took, by phase, and the rows it added."""

    small_rows_s: float
    drop_s: float
    copy_s: float
    rebuild_s: float
    presence_s: float
    vacuum_s: float
    versions: int

    @property
    def total_s(self) -> float:
        return (
            self.small_rows_s
            + self.drop_s
            + self.copy_s
            + self.rebuild_s
            + self.presence_s
            + self.vacuum_s
        )


def checkpoint_presence(url: str, *, summarise: tuple[datetime, datetime] | None = None) -> int:
    """The daily image presence checkpoints not taken yet (`take_checkpoints`, as the daily
    purge takes them; the rows of the clusters just COPYed are counted in the earlier ones by
    their COPY: `cluster_rows`' `checkpoints`), and the day summaries of the checkpoints from
    `summarise`'s first instant to its second (`store.presence_days.derive_days`, as the purge
    derives them: the ones derived before are forgotten, the COPY changed every day);
    returns the checkpoint rows written."""
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from store import image_presence, presence_days  # noqa: PLC0415
    from store.db import make_engine  # noqa: PLC0415

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            written = image_presence.take_checkpoints(session)
            session.commit()
        if summarise is not None and has_table(url, "image_derived_days"):
            with Session(engine) as session:
                image_presence.forget_days(session, since=None)
                since, until = summarise
                presence_days.derive_days(session, since=since, until=until)
                session.commit()
        return written
    finally:
        engine.dispose()


def checkpoints_taken(url: str) -> tuple[datetime, ...]:
    """The instants of the image presence checkpoints already taken, oldest first."""
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT at FROM image_checkpoints ORDER BY at")
            return tuple(at for (at,) in cursor.fetchall())
    finally:
        connection.close()


def index_definitions(url: str) -> dict[str, tuple[str, str]]:
    """(drop, create) statements of the indexes rebuilt around a load — a constraint's index
    (a primary key) as the constraint — read from the schema the migrations made (call once,
    before the first load; an index the schema lacks is left out)."""
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indexname, i.tablename, i.indexdef, pg_get_constraintdef(c.oid) "
                "FROM pg_indexes i LEFT JOIN pg_constraint c ON c.conname = i.indexname "
                "WHERE i.indexname = ANY(%s)",
                (list(REBUILT_INDEXES),),
            )
            statements: dict[str, tuple[str, str]] = {}
            for name, table, definition, constraint in cursor.fetchall():
                if constraint:
                    statements[name] = (
                        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}",
                        f"ALTER TABLE {table} ADD CONSTRAINT {name} {constraint}",
                    )
                else:
                    statements[name] = (f"DROP INDEX IF EXISTS {name}", definition)
            return statements
    finally:
        connection.close()


def _execute(url: str, statements: Sequence[str], *, autocommit: bool = False) -> None:
    connection = connect(url)
    connection.autocommit = autocommit
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for statement in statements:
                cursor.execute(statement)
        if not autocommit:
            connection.commit()
    finally:
        connection.close()


def _rebuild(url: str, statements: Sequence[str], *, workers: int) -> None:
    """Run the index builds side by side, one connection each (at most `workers` at once)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in [pool.submit(_execute, url, [statement]) for statement in statements]:
            done.result()


def _parallel(tasks: Sequence[Any], *, workers: int) -> Iterator[int]:
    if workers <= 1:
        yield from map(_copy_cluster, tasks)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_copy_cluster, tasks)


def loaders() -> int:
    """Loader processes: K8SMON_BENCH_FLEET_LOADERS, default 3 (two cores: one process
    generates while another's COPY is parsed by its PostgreSQL backend)."""
    return int(os.environ.get("K8SMON_BENCH_FLEET_LOADERS") or 3)


def load_step(
    url: str,
    *,
    lo: int,
    hi: int,
    shape: ClusterShape,
    pings: int,
    scans: int,
    findings: int,
    indexes: dict[str, tuple[str, str]],
    workers: int | None = None,
    summarise: tuple[timedelta, timedelta] | None = None,
) -> LoadTimes:
    """Add clusters lo..hi-1 with their history; the seconds of each phase. `summarise`: the
    image presence day summaries derived, from that long before now to that long before."""
    import time  # noqa: PLC0415

    workers = workers or loaders()
    now = datetime.now(UTC)
    parameters = {
        "lo": lo,
        "hi": hi,
        "now": now,
        "days": shape.days,
        "objects": shape.objects,
        "pings": pings,
        "scans": scans,
        "findings": findings,
    }
    started = time.perf_counter()
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            for statement in SMALL_ROWS_SQL:
                cursor.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()
    small_s = time.perf_counter() - started
    started = time.perf_counter()
    _execute(url, [drop for drop, _ in indexes.values()])
    drop_s = time.perf_counter() - started
    started = time.perf_counter()
    indexed = has_image_index(url)
    # Image presence (groups, changes, present) COPYed with the rest (schema 0015 on).
    presence = has_table(url, "image_groups")
    # The checkpoints an earlier step took count the new clusters' rows as they are COPYed.
    taken = checkpoints_taken(url) if indexed and presence else ()
    tasks = [(url, c, shape, now, indexed, presence, taken) for c in range(lo, hi)]
    versions = sum(_parallel(tasks, workers=workers))
    copy_s = time.perf_counter() - started
    started = time.perf_counter()
    _rebuild(url, [create for _, create in indexes.values()], workers=workers)
    rebuild_s = time.perf_counter() - started
    started = time.perf_counter()
    serials = ("objects", "manifest_versions", *(("image_groups",) if presence else ()))
    _execute(
        url,
        [
            *(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
                for table in serials
            ),
            "VACUUM ANALYZE",
        ],
        autocommit=True,
    )
    vacuum_s = time.perf_counter() - started
    started = time.perf_counter()
    if indexed and presence:
        window = None if summarise is None else (now - summarise[0], now - summarise[1])
        checkpoint_presence(url, summarise=window)
        analysed = "image_checkpoints, image_checkpoint_slots"
        if has_table(url, "image_derived_days"):
            analysed += (
                ", image_values, image_derived_days, image_checkpoint_values, "
                "image_day_changes, image_hour_changes, image_day_events"
            )
        _execute(url, [f"ANALYZE {analysed}"], autocommit=True)
    presence_s = time.perf_counter() - started
    return LoadTimes(small_s, drop_s, copy_s, rebuild_s, presence_s, vacuum_s, versions)


ORPHAN_CHECKS = {
    "objects.cluster_id": "SELECT count(*) FROM objects o WHERE NOT EXISTS "
    "(SELECT 1 FROM clusters c WHERE c.id = o.cluster_id)",
    "objects.current_hash": "SELECT count(*) FROM objects o WHERE NOT EXISTS "
    "(SELECT 1 FROM manifest_bodies b WHERE b.content_hash = o.current_hash)",
    "manifest_versions.object_id": "SELECT count(*) FROM manifest_versions v WHERE NOT EXISTS "
    "(SELECT 1 FROM objects o WHERE o.id = v.object_id)",
    "manifest_versions.content_hash": "SELECT count(*) FROM manifest_versions v WHERE NOT EXISTS"
    " (SELECT 1 FROM manifest_bodies b WHERE b.content_hash = v.content_hash)",
    "telemetry_pings.cluster_id": "SELECT count(*) FROM telemetry_pings p WHERE NOT EXISTS "
    "(SELECT 1 FROM clusters c WHERE c.id = p.cluster_id)",
}


def orphans(url: str) -> dict[str, int]:
    """Rows whose foreign key points nowhere, per foreign key (all 0 after a correct load)."""
    checks = dict(ORPHAN_CHECKS)
    if has_image_index(url):
        checks["body_images.content_hash"] = (
            "SELECT count(*) FROM body_images i WHERE NOT EXISTS "
            "(SELECT 1 FROM manifest_bodies b WHERE b.content_hash = i.content_hash)"
        )
    connection = connect(url)
    try:
        with connection.cursor() as cursor:
            found = {}
            for name, query in checks.items():
                cursor.execute(query)
                found[name] = int(cursor.fetchone()[0])
            return found
    finally:
        connection.close()
