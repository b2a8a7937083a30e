"""Timelines at scale (PostgreSQL): one cluster of 10,000 objects with 5 versions each,
1,000 of them deleted, 20,000 findings with 30,000 open/resolve events and 2,000 scans.

The cluster's timeline page (first page and a page a year back), the resource page and the
admin API's timeline answer 200 with bounded HTML, and each costs the same number of SQL
statements at 50 and at 200 entries a page (no query per entry). Times are printed (`-s`),
never asserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from settings import Settings
from store.models import KubeObject
from store.timeline import Cursor
from store.types import utcnow
from tests.support.manifests import deployment
from tests.web.conftest import sign_in
from tests.web.fleet import ADMIN_PASSWORD, Fleet, build_fleet

CLUSTER = "tl-big"
OBJECTS = 10_000
VERSIONS = 5
SCANS = 2_000
MAX_PAGE_BYTES = 600 * 1024

FILL = (
    """
    INSERT INTO clusters (id, display_name, labels, status, created_at)
    VALUES (:cluster, 'Big history', '{}'::jsonb, 'active', now() - interval '400 days')
    """,
    """
    INSERT INTO manifest_bodies (content_hash, body, size_bytes, created_at)
    SELECT 'tl-h' || v, CAST(:bodies AS jsonb) -> (v - 1), 700, now()
    FROM generate_series(1, :versions) AS v
    """,
    """
    INSERT INTO objects (cluster_id, ref_key, api_version, kind, namespace, name, uid,
                         first_seen, last_seen, current_hash, deleted_at)
    SELECT :cluster, 'apps/v1|Deployment|ns-' || (r % 50) || '|app-' || r, 'apps/v1',
           'Deployment', 'ns-' || (r % 50), 'app-' || r, md5('tl' || r),
           now() - interval '300 days' + make_interval(mins => r), now(), 'tl-h' || :versions,
           CASE WHEN r % 10 = 0 THEN now() - make_interval(mins => r) END
    FROM generate_series(0, :objects - 1) AS r
    """,
    """
    INSERT INTO manifest_versions (object_id, content_hash, first_seen, last_seen, superseded_at)
    SELECT o.id, 'tl-h' || v, o.first_seen + make_interval(days => 50 * (v - 1)),
           o.first_seen + make_interval(days => 50 * v),
           CASE WHEN v < :versions THEN o.first_seen + make_interval(days => 50 * v) END
    FROM objects o CROSS JOIN generate_series(1, :versions) AS v
    WHERE o.cluster_id = :cluster
    """,
    """
    UPDATE objects o SET current_version_id = v.id
    FROM manifest_versions v
    WHERE v.object_id = o.id AND v.content_hash = 'tl-h' || :versions AND o.cluster_id = :cluster
    """,
    """
    INSERT INTO findings (cluster_id, fingerprint, rule_id, api_version, kind, namespace, name,
                          container, path, severity, message, status, first_seen, last_seen,
                          resolved_at, details)
    SELECT o.cluster_id, md5(o.id || rule), rule, 'apps/v1', 'Deployment', o.namespace, o.name,
           'main', 'spec.template.spec.containers[0].image', 'high', 'bench',
           CASE WHEN rule = 'KM-102' THEN 'resolved' ELSE 'open' END,
           o.first_seen + interval '50 days 5 minutes', now(),
           CASE WHEN rule = 'KM-102' THEN o.first_seen + interval '150 days 5 minutes' END,
           '{"title": "bench rule"}'::jsonb
    FROM objects o CROSS JOIN (VALUES ('KM-101'), ('KM-102')) AS rules (rule)
    WHERE o.cluster_id = :cluster
    """,
    """
    INSERT INTO finding_events (cluster_id, finding_id, event, at, scan_id, version_id)
    SELECT f.cluster_id, f.id, e.event, CASE WHEN e.event = 'opened' THEN f.first_seen
                                             ELSE f.resolved_at END, NULL, v.id
    FROM objects o
    CROSS JOIN (VALUES ('KM-101', 'opened', 'tl-h2'), ('KM-102', 'opened', 'tl-h2'),
                       ('KM-102', 'resolved', 'tl-h4')) AS e (rule, event, body)
    JOIN findings f ON f.cluster_id = o.cluster_id AND f.fingerprint = md5(o.id || e.rule)
    JOIN manifest_versions v ON v.object_id = o.id AND v.content_hash = e.body
    WHERE o.cluster_id = :cluster
    """,
    """
    INSERT INTO scan_runs (cluster_id, trigger, state, started_at, finished_at, duration_s,
                           object_count, shard_count, counts, errors)
    SELECT :cluster, 'schedule', 'done', now() - make_interval(hours => 4 * s),
           now() - make_interval(hours => 4 * s) + interval '20 seconds', 20, :objects, 1,
           jsonb_build_object('new', s % 7, 'resolved', s % 5), '[]'::jsonb
    FROM generate_series(1, :scans) AS s
    """,
)


def _bodies() -> str:
    bodies = []
    for v in range(1, VERSIONS + 1):
        body = deployment("app", namespace="ns", image=f"registry.example/app:{v}.0")
        body["spec"]["replicas"] = v
        bodies.append(body)
    return json.dumps(bodies)


@pytest.fixture
def big(db_session: Session, test_settings: Settings) -> Iterator[Fleet]:
    fleet = build_fleet(db_session, test_settings)
    with fleet.sessions() as session:
        params = {
            "cluster": CLUSTER,
            "objects": OBJECTS,
            "versions": VERSIONS,
            "scans": SCANS,
            "bodies": _bodies(),
        }
        for statement in FILL:
            session.execute(text(statement), params)
        for table in ("objects", "manifest_versions", "findings", "finding_events", "scan_runs"):
            session.execute(text(f"ANALYZE {table}"))
        session.commit()
    yield fleet


class Statements:
    """SQL statements sent through the app's connection while counting."""

    def __init__(self, session: Session) -> None:
        self.engine = session.get_bind().engine
        self.count = 0

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: object) -> None:
        self.count += 1


def _get(
    client: FlaskClient, url: str, figures: dict[str, tuple[int, float, int]], db: Session
) -> str:
    client.get(url)  # warm: the figure is the steady state
    with Statements(db) as statements:
        started = time.perf_counter()
        answer = client.get(url)
        elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (url, answer.status_code)
    figures[url] = (len(answer.data), elapsed, statements.count)
    assert len(answer.data) <= MAX_PAGE_BYTES, (url, len(answer.data))
    return answer.get_data(as_text=True)


def test_timeline_pages_on_a_cluster_with_a_long_history(big: Fleet, db_session: Session) -> None:
    client = big.app.test_client()
    sign_in(client, "alice", ADMIN_PASSWORD)
    figures: dict[str, tuple[int, float, int]] = {}
    base = f"/admin/clusters/{CLUSTER}/timeline"

    first = _get(client, f"{base}?limit=50", figures, db_session)
    assert first.count('<li class="event ') == 50
    wide = _get(client, f"{base}?limit=200", figures, db_session)
    assert wide.count('<li class="event ') == 200
    # No statement per entry: 4x the entries, the same number of statements.
    assert figures[f"{base}?limit=200"][2] == figures[f"{base}?limit=50"][2]

    months_ago = Cursor(utcnow() - timedelta(days=245), 3, 2**40).encode()
    deep = _get(client, f"{base}?limit=50&before={months_ago}", figures, db_session)
    assert deep.count('<li class="event ') == 50 and "finding_opened" in deep
    findings_only = _get(client, f"{base}?types=findings&limit=50", figures, db_session)
    assert findings_only.count('<li class="event finding_') == 50

    with big.sessions() as session:
        obj = session.scalar(
            select(KubeObject.id).where(
                KubeObject.cluster_id == CLUSTER, KubeObject.name == "app-77"
            )
        )
    resource = _get(client, f"/admin/clusters/{CLUSTER}/objects/{obj}", figures, db_session)
    section = resource.split('id="timeline"')[1]
    assert section.count('<li class="event ') == VERSIONS + 3  # 5 versions, 2 opened, 1 resolved

    print(f"\ntimeline pages, {OBJECTS:,} objects x {VERSIONS} versions, {SCANS:,} scans:")
    for url, (size, seconds, statements) in figures.items():
        print(f"  {size / 1024:7.1f} KiB  {seconds * 1000:7.1f} ms  {statements:3d} SQL  {url}")
