"""The clusters' image-inventory rows are read by the primary key of `rule_result_cache`
whatever PostgreSQL's statistics say (`store.images._inventory_rows`): a fleet evaluation reads
them twice, and on a cache filled since its last ANALYZE (a first fleet scan, autovacuum off or
not run yet) a statement that matched them by a prefix of their version scanned the whole
table (161 ms at the bench's 200 clusters and 400,000 cached results, 3.8 ms once analyzed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from store import images as images_module
from store.models import RuleResultCache
from store.rule_cache import cluster_inventory_key, inventory_version

CLUSTERS = 200
CACHED_RESULTS = 50_000


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


def test_inventory_rows_are_read_by_the_primary_key_on_a_cache_never_analyzed(
    db_session: Session,
) -> None:
    session = db_session
    session.execute(
        text(
            "INSERT INTO rule_result_cache (content_hash, catalogue_version, results, created_at) "
            "SELECT md5(n::text) || md5((n + 1)::text), 'catalogue-1', '[]', now() "
            "FROM generate_series(1, :count) AS n"
        ),
        {"count": CACHED_RESULTS},
    )
    keys = {
        cluster_inventory_key(f"c{n:03d}", f"sha256:{n}", snapshot_id=n): f"c{n:03d}"
        for n in range(CLUSTERS)
    }
    session.add_all(
        RuleResultCache(
            content_hash=key,
            catalogue_version=inventory_version(cluster_id),
            results=[{"uses": []}],
            uses_digest=f"digest-{cluster_id}",
        )
        for key, cluster_id in keys.items()
    )
    session.flush()
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if "rule_result_cache" in statement:
            statements.append((statement, parameters))

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", seen)
    try:
        rows = list(images_module._inventory_rows(session, keys, RuleResultCache.uses_digest))
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    assert sorted(rows) == sorted((key, f"digest-{cid}") for key, cid in keys.items())
    assert statements
    cursor = connection.connection.cursor()
    for statement, parameters in statements:
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        (explained,) = cursor.fetchone()  # the driver decodes the JSON plan
        nodes = _plan_nodes(explained[0]["Plan"])
        scans = {node["Node Type"] for node in nodes if "Scan" in node["Node Type"]}
        assert "Seq Scan" not in scans, scans
        assert {node.get("Index Name") for node in nodes} >= {"pk_rule_result_cache"}
    cursor.close()
