"""The embedded default: the same pipeline on SQLite (lifecycle, incremental finalize, purge)."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Finding
from tests.workers.conftest import Pipeline
from tests.workers.test_scan_lifecycle import offline
from tests.workers.workloads import cluster_state, fixed, privileged


def active(pipeline: Pipeline, cluster_id: str) -> set[tuple]:
    return {
        (
            f.rule_id,
            f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}",
            f.container,
            f.path or "",
        )
        for f in pipeline.session.scalars(
            select(Finding).where(
                Finding.cluster_id == cluster_id, Finding.status.in_(("new", "open", "exempted"))
            )
        )
    }


def test_lifecycle_and_incremental_scans_on_sqlite(sqlite_pipeline: Pipeline) -> None:
    objects = cluster_state("lite", 9)
    sqlite_pipeline.push_and_process("lite", objects)
    first = sqlite_pipeline.run.run("k8smon.rescan", "lite")
    assert active(sqlite_pipeline, "lite") == offline(objects, "lite")
    assert first["counts"]["new"] == len(offline(objects, "lite"))

    again = sqlite_pipeline.run.run("k8smon.rescan", "lite")
    assert again["counts"]["unchanged"] == 1

    changed = [fixed(objects[0]), *objects[1:], privileged("lite-new", namespace="x")]
    sqlite_pipeline.push_and_process("lite", changed)
    third = sqlite_pipeline.run.run("k8smon.rescan", "lite")
    assert third["counts"]["incremental"] == 1 and third["counts"]["resolved"] >= 1
    assert active(sqlite_pipeline, "lite") == offline(changed, "lite")


def test_purge_runs_on_sqlite(sqlite_pipeline: Pipeline) -> None:
    sqlite_pipeline.push_and_process("lite-purge", cluster_state("lp", 3))
    sqlite_pipeline.run.run("k8smon.rescan", "lite-purge")
    outcome = sqlite_pipeline.run.run("k8smon.purge_expired")
    assert outcome["complete"] is True
    deleted = outcome["deleted"]
    assert deleted["manifest_versions"] == 0 and deleted["rule_result_cache"] == 0
    assert active(sqlite_pipeline, "lite-purge")
