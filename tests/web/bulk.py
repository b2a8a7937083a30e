"""A bench-sized fleet for the admin-page tests: 200 clusters and 100,000 findings.

`fill_bulk_fleet` adds, on top of the small seeded fleet of `tests.web.fleet`, rows written in
bulk with PostgreSQL's `generate_series` (the same approach as `bench/operator.py`): clusters
`bench-000`..`bench-199` (20 teams, env labels), 100 Deployments/StatefulSets/DaemonSets per
cluster with one manifest version each, 500 findings per cluster drawn from the real rule
catalogue (its ids, titles, severities, categories, CIS and PSS mappings), 30 finished scans per
cluster over 15 days whose latest numbers equal the findings table, a latest telemetry ping
each, a few exemptions and 3,000 audit entries. Everything lands inside the test's SAVEPOINT
and is rolled back with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from cli.wsgi import rule_catalogue
from tests.support.manifests import deployment

CLUSTERS = 200
FINDINGS_PER_CLUSTER = 500
RESOURCES_PER_CLUSTER = 100
SCANS_PER_CLUSTER = 30
AUDIT_ENTRIES = 3000
BODY_HASH = "b" * 64


@dataclass(frozen=True, slots=True)
class BulkFleet:
    clusters: int
    findings: int
    scans_per_cluster: int


FILL_SQL = (
    """
    INSERT INTO clusters (id, display_name, team, channel, labels, status, created_at,
                          last_telemetry_at)
    SELECT 'bench-' || lpad(c::text, 3, '0'), 'Bench cluster ' || c, 'team-' || (c % 20), NULL,
           jsonb_build_object('env', CASE WHEN c % 3 = 0 THEN 'prod' ELSE 'staging' END),
           'active', now() - interval '30 days', now() - make_interval(mins => c % 10)
    FROM generate_series(0, :clusters - 1) AS c
    """,
    """
    INSERT INTO manifest_bodies (content_hash, body, size_bytes, created_at)
    VALUES (:body_hash, CAST(:body AS jsonb), 700, now())
    """,
    """
    INSERT INTO objects (cluster_id, ref_key, api_version, kind, namespace, name, uid,
                         first_seen, last_seen, current_hash)
    SELECT c.id,
           'apps/v1|' || (ARRAY['Deployment', 'StatefulSet', 'DaemonSet'])[1 + r % 3]
             || '|ns-' || (r % 10) || '|app-' || r,
           'apps/v1', (ARRAY['Deployment', 'StatefulSet', 'DaemonSet'])[1 + r % 3],
           'ns-' || (r % 10), 'app-' || r, md5(c.id || r), now() - interval '20 days', now(),
           :body_hash
    FROM clusters c CROSS JOIN generate_series(0, :resources - 1) AS r
    WHERE c.id LIKE 'bench-%'
    """,
    """
    INSERT INTO manifest_versions (object_id, content_hash, first_seen, last_seen)
    SELECT o.id, o.current_hash, o.first_seen, o.last_seen
    FROM objects o WHERE o.cluster_id LIKE 'bench-%'
    """,
    """
    UPDATE objects o SET current_version_id = v.id
    FROM manifest_versions v WHERE v.object_id = o.id AND o.cluster_id LIKE 'bench-%'
    """,
    """
    CREATE TEMPORARY TABLE bench_rules (n integer, id text, severity text, details jsonb)
    ON COMMIT DROP
    """,
    """
    INSERT INTO bench_rules (n, id, severity, details)
    SELECT (r ->> 'n')::int, r ->> 'id', r ->> 'severity', r -> 'details'
    FROM jsonb_array_elements(CAST(:rules AS jsonb)) AS r
    """,
    """
    INSERT INTO findings (cluster_id, fingerprint, rule_id, api_version, kind, namespace, name,
                          container, path, content_hash, severity, message, status,
                          first_seen, last_seen, resolved_at, last_scan_id, details)
    SELECT c.id, md5(c.id || '/' || f), br.id, 'apps/v1',
           (ARRAY['Deployment', 'StatefulSet', 'DaemonSet'])[1 + (f % :resources) % 3],
           'ns-' || ((f % :resources) % 10), 'app-' || (f % :resources), 'main',
           'spec.template.spec.containers[0].securityContext', :body_hash, br.severity,
           br.details ->> 'title',
           (ARRAY['open', 'open', 'open', 'open', 'open', 'open', 'open', 'new', 'exempted',
                  'resolved'])[1 + (f / 7) % 10],
           now() - make_interval(days => f % 14), now(),
           CASE WHEN (f / 7) % 10 = 9 THEN now() - interval '1 day' END, NULL, br.details
    FROM clusters c CROSS JOIN generate_series(0, :per_cluster - 1) AS f
    JOIN bench_rules br ON br.n = (f + length(c.id) * ascii(right(c.id, 1))) % :rule_count
    WHERE c.id LIKE 'bench-%'
    """,
    """
    INSERT INTO scan_runs (cluster_id, trigger, state, started_at, finished_at, duration_s,
                           object_count, shard_count, counts, errors)
    SELECT c.id, 'schedule', 'done', now() - make_interval(hours => 12 * s),
           now() - make_interval(hours => 12 * s) + interval '20 seconds', 20, :resources, 1,
           jsonb_build_object(
             'new', 3 + (s * 5 + length(c.id)) % 9, 'resolved', (s * 3) % 7,
             'open', 380 + s, 'exempted', 50,
             'severity_critical', 20 + s % 5, 'severity_high', 120 + (s * 7) % 30,
             'severity_medium', 150 + s, 'severity_low', 60 + s % 3, 'severity_info', 30),
           '[]'::jsonb
    FROM clusters c CROSS JOIN generate_series(1, :scans - 1) AS s
    WHERE c.id LIKE 'bench-%'
    """,
    """
    INSERT INTO scan_runs (cluster_id, trigger, state, started_at, finished_at, duration_s,
                           object_count, shard_count, counts, errors)
    SELECT f.cluster_id, 'schedule', 'done', now() - interval '5 minutes',
           now() - interval '4 minutes', 20, :resources, 1,
           jsonb_build_object(
             'new', count(*) FILTER (WHERE f.status = 'new'),
             'resolved', count(*) FILTER (WHERE f.status = 'resolved'),
             'open', count(*) FILTER (WHERE f.status = 'open'),
             'exempted', count(*) FILTER (WHERE f.status = 'exempted'),
             'severity_critical',
               count(*) FILTER (WHERE f.status IN ('new', 'open') AND f.severity = 'critical'),
             'severity_high',
               count(*) FILTER (WHERE f.status IN ('new', 'open') AND f.severity = 'high'),
             'severity_medium',
               count(*) FILTER (WHERE f.status IN ('new', 'open') AND f.severity = 'medium'),
             'severity_low',
               count(*) FILTER (WHERE f.status IN ('new', 'open') AND f.severity = 'low'),
             'severity_info',
               count(*) FILTER (WHERE f.status IN ('new', 'open') AND f.severity = 'info')),
           '[]'::jsonb
    FROM findings f WHERE f.cluster_id LIKE 'bench-%' GROUP BY f.cluster_id
    """,
    """
    INSERT INTO telemetry_pings (cluster_id, received_at, agent_version, kubernetes_version,
                                 platform, node_count, namespace_count, object_count,
                                 object_counts, errors, details)
    SELECT c.id, now() - make_interval(mins => (row_number() OVER ())::int % 10), '0.1.0',
           'v1.3' || (ascii(right(c.id, 1)) % 2), 'eks', 3, 10, :resources, '{}'::jsonb,
           '{}'::jsonb, '{}'::jsonb
    FROM clusters c WHERE c.id LIKE 'bench-%'
    """,
    """
    INSERT INTO exemptions (rule_ids, scope, cluster_id, selector, reason, created_by,
                            created_at, expires_at)
    SELECT jsonb_build_array(br.id), 'cluster', 'bench-' || lpad((e * 7)::text, 3, '0'),
           jsonb_build_object('namespace', 'ns-' || e), 'bench exemption ' || e, 'alice',
           now() - interval '3 days', now() + interval '90 days'
    FROM generate_series(0, 19) AS e JOIN bench_rules br ON br.n = e
    """,
    """
    INSERT INTO audit_log (at, actor, action, target, details, source)
    SELECT now() - make_interval(mins => a),
           (ARRAY['alice', 'bob', 'carol', 'ci-bot'])[1 + a % 4],
           (ARRAY['session.sign_in', 'cluster.rescan', 'exemption.create', 'search.run',
                  'exemption.expire', 'report.download'])[1 + a % 6],
           'bench-' || lpad((a % 200)::text, 3, '0'), jsonb_build_object('n', a), 'admin-pages'
    FROM generate_series(1, :audit) AS a
    """,
)


def _rules_json() -> tuple[str, int]:
    catalogue = sorted(rule_catalogue().values(), key=lambda info: info["id"])
    rows = [
        {
            "n": n,
            "id": info["id"],
            "severity": info["severity"],
            "details": {
                "title": info["title"],
                "category": info["category"],
                "cis": info["cis"],
                "pss": info["pss"],
                "source": "bench",
            },
        }
        for n, info in enumerate(catalogue)
    ]
    return json.dumps(rows), len(rows)


def fill_bulk_fleet(session: Session) -> BulkFleet:
    """Write the bench-sized fleet into the session's transaction (see the module docstring)."""
    rules, rule_count = _rules_json()
    body = deployment("app", namespace="ns-0", image="registry.example/app:1.0")
    params = {
        "clusters": CLUSTERS,
        "resources": RESOURCES_PER_CLUSTER,
        "per_cluster": FINDINGS_PER_CLUSTER,
        "scans": SCANS_PER_CLUSTER,
        "audit": AUDIT_ENTRIES,
        "rules": rules,
        "rule_count": rule_count,
        "body_hash": BODY_HASH,
        "body": json.dumps(body),
    }
    for statement in FILL_SQL:
        session.execute(text(statement), params)
    session.execute(text("ANALYZE"))
    return BulkFleet(
        clusters=CLUSTERS,
        findings=CLUSTERS * FINDINGS_PER_CLUSTER,
        scans_per_cluster=SCANS_PER_CLUSTER,
    )
