"""An incremental scan looks for uncached bodies among the objects changed since the last
complete scan only (`ScanPlan.since`), and a scan after one that left objects unevaluated
looks at every object again."""

from __future__ import annotations

from sqlalchemy import delete, select

from store.models import KubeObject, RuleResultCache, ScanRun
from tests.support.manifests import config_map
from tests.workers.conftest import Pipeline
from tests.workers.test_scan_lifecycle import findings_of, offline
from tests.workers.workloads import cluster_state, fixed, privileged
from workers import jobs


def _watermark(pipeline: Pipeline, cluster_id: str) -> int:
    run = pipeline.session.scalars(
        select(ScanRun)
        .where(ScanRun.cluster_id == cluster_id, ScanRun.state == "done")
        .order_by(ScanRun.id.desc())
        .limit(1)
    ).one()
    return int(run.counts["version_watermark"])


def test_an_incremental_plan_looks_among_the_changed_objects(pipeline: Pipeline) -> None:
    objects = cluster_state("plan", 12)
    pipeline.push_and_process("plan", objects)
    pipeline.run.run("k8smon.rescan", "plan")
    watermark = _watermark(pipeline, "plan")

    changed = [*objects[2:], fixed(objects[0]), config_map("added", namespace="plan")]
    pipeline.push_and_process("plan", changed)  # one changed, one added, one deleted
    plan = jobs.plan_scan(pipeline.ctx, "plan", trigger="test")
    assert plan.since == watermark
    newer = set(
        pipeline.session.scalars(
            select(KubeObject.id).where(
                KubeObject.cluster_id == "plan",
                KubeObject.deleted_at.is_(None),
                KubeObject.current_version_id > watermark,
            )
        )
    )
    assert len(newer) == 2
    assert sum(shard.size for shard in plan.shards) == 2
    assert all(shard.first_id in newer and shard.last_id in newer for shard in plan.shards)
    outcome = pipeline.run.run_plan(plan)
    assert outcome["counts"]["evaluated"] == 2 and outcome["counts"]["unevaluated"] == 0
    assert outcome["counts"]["incremental"] == 1
    assert findings_of(pipeline, "plan") == offline(changed, "plan")


def test_a_scan_after_one_that_left_objects_unevaluated_plans_every_object(
    pipeline: Pipeline,
) -> None:
    objects = [privileged("keep", namespace="a"), config_map("cm", namespace="a")]
    pipeline.push_and_process("heal", objects)
    pipeline.run.run("k8smon.rescan", "heal")
    # Results deleted behind the scans' back: an incremental plan does not look for the
    # unchanged bodies, so the next scan leaves them unevaluated (their findings kept) ...
    pipeline.session.execute(delete(RuleResultCache))
    pipeline.session.commit()
    before = findings_of(pipeline, "heal")
    changed = [*objects, config_map("new-one", namespace="a")]
    pipeline.push_and_process("heal", changed)
    plan = jobs.plan_scan(pipeline.ctx, "heal", trigger="test")
    assert plan.since is not None
    outcome = pipeline.run.run_plan(plan)
    assert outcome["counts"]["evaluated"] == 1 and outcome["counts"]["unevaluated"] == 2
    assert findings_of(pipeline, "heal") == before
    # ... and the scan after that plans every object again, and finds what a full scan does.
    plan = jobs.plan_scan(pipeline.ctx, "heal", trigger="test")
    assert plan.since is None and not plan.finished
    outcome = pipeline.run.run_plan(plan)
    assert outcome["counts"]["evaluated"] == 2 and outcome["counts"]["unevaluated"] == 0
    assert findings_of(pipeline, "heal") == offline(changed, "heal")
