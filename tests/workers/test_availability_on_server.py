"""The autoscaling and availability rules (KM-613..KM-618) on the server: each rule's fixtures,
pushed as a cluster and scanned by the pipeline, give exactly the offline scan's findings,
on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from rules import Engine, load_paths
from store.models import Finding
from tests.workers.conftest import Pipeline

FIXTURES = Path(__file__).parents[1] / "rules" / "fixtures"
RULES = ("KM-613", "KM-614", "KM-615", "KM-616", "KM-617", "KM-618")


def test_availability_fixtures_give_the_offline_findings_on_the_server(
    any_pipeline: Pipeline,
) -> None:
    pipeline = any_pipeline
    expected: dict[str, set[tuple[str, str, str]]] = {}
    for rule_id in RULES:
        for path in sorted((FIXTURES / rule_id).glob("*.yaml")):
            objects = [dict(d.manifest) for d in load_paths([path]).documents]
            for index, body in enumerate(objects):  # the agent sends every object's uid
                body.setdefault("metadata", {}).setdefault("uid", f"uid-{index}")
            cluster_id = f"{rule_id}-{path.stem}".lower()
            pipeline.push_and_process(cluster_id, objects)
            offline = Engine.from_config(None).scan(objects, cluster=cluster_id)
            expected[cluster_id] = {
                (r.rule_id, r.resource.key, r.path)
                for r in offline.results
                if r.rule_id in RULES and r.status != "error"
            }
            fires = path.name.startswith("fail-")
            assert any(r == rule_id for r, _k, _p in expected[cluster_id]) == fires, path
    pipeline.run.run("k8smon.scan_fleet")
    for cluster_id, wanted in expected.items():
        rows = pipeline.session.scalars(
            select(Finding).where(Finding.cluster_id == cluster_id, Finding.rule_id.in_(RULES))
        )
        found = {
            (f.rule_id, f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}", f.path or "")
            for f in rows
        }
        assert found == wanted, cluster_id
