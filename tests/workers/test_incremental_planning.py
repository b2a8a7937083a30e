"""An incremental scan looks for uncached bodies among the objects changed since the last
complete scan only (`ScanPlan.since`), and a scan after one that left objects unevaluated
looks at every object again. A one-shard plan run right after in the same state takes the
uncached bodies planning found, and looks again when the state changed meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select

from store import rule_cache
from store.bulk import CHUNK
from store.models import KubeObject, RuleResultCache, ScanRun
from tests.support.manifests import config_map
from tests.workers.conftest import Pipeline
from tests.workers.test_scan_lifecycle import findings_of, offline
from tests.workers.workloads import cluster_state, fixed, privileged
from workers import jobs
from workers.services import scanning


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


def _looking(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The clusters whose shard looks for uncached bodies in the database from now on."""
    looked: list[str] = []
    real = rule_cache.uncached_in_range

    def uncached_in_range(session: Any, cluster_id: str, **kwargs: Any) -> Any:
        looked.append(cluster_id)
        return real(session, cluster_id, **kwargs)

    monkeypatch.setattr(rule_cache, "uncached_in_range", uncached_in_range)
    return looked


def test_a_plan_run_in_its_own_state_evaluates_the_bodies_it_found_uncached(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = cluster_state("same", 9)
    pipeline.push_and_process("same", objects)
    plan = jobs.plan_scan(pipeline.ctx, "same", trigger="test")
    assert len(plan.shards) == 1 and plan.uncached is not None and len(plan.uncached) == 9
    looked = _looking(monkeypatch)
    outcome = pipeline.run.run_plan(plan)
    assert looked == []  # the plan's look-up was used
    assert outcome["counts"]["evaluated"] == 9 and outcome["counts"]["unevaluated"] == 0
    assert findings_of(pipeline, "same") == offline(objects, "same")


def test_a_plan_run_after_its_cluster_changed_looks_for_uncached_bodies_again(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = cluster_state("moved", 9)
    pipeline.push_and_process("moved", objects)
    plan = jobs.plan_scan(pipeline.ctx, "moved", trigger="test")
    changed = [fixed(objects[0]), *objects[1:]]  # a body the plan did not see, same object
    pipeline.push_and_process("moved", changed)
    looked = _looking(monkeypatch)
    outcome = pipeline.run.run_plan(plan)
    assert looked == ["moved"]
    assert outcome["counts"]["unevaluated"] == 0
    assert findings_of(pipeline, "moved") == offline(changed, "moved")


def _reading_live(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The clusters whose live objects' rows are read from now on."""
    read: list[str] = []
    real = scanning._live_rows

    def live_rows(session: Any, cluster_id: str) -> Any:
        read.append(cluster_id)
        return real(session, cluster_id)

    monkeypatch.setattr(scanning, "_live_rows", live_rows)
    return read


def test_an_incremental_plan_hands_its_live_rows_to_the_shard_run_after_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live objects' rows an incremental one-shard plan read (for its uncached bodies
    and the object count) are the shard's, run right after in the same state: read once."""
    objects = cluster_state("rows", 9)
    pipeline.push_and_process("rows", objects)
    pipeline.run.run("k8smon.rescan", "rows")
    changed = [fixed(objects[0]), *objects[1:]]
    pipeline.push_and_process("rows", changed)
    read = _reading_live(monkeypatch)
    plan = jobs.plan_scan(pipeline.ctx, "rows", trigger="test")
    assert plan.since is not None and plan.live is not None and len(plan.live) == 9
    outcome = pipeline.run.run_plan(plan)
    assert read == ["rows"]
    assert outcome["counts"]["objects"] == 9 and outcome["counts"]["incremental"] == 1
    assert findings_of(pipeline, "rows") == offline(changed, "rows")


@pytest.mark.parametrize("back", [False, True], ids=["changed", "changed-back"])
def test_a_plan_run_after_a_push_reads_the_live_rows_again(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, back: bool
) -> None:
    """A push applied between plan and run makes the shard read the rows again, also when
    it brought the cluster back to the state the plan saw (same digest, other versions)."""
    objects = cluster_state("again", 9)
    pipeline.push_and_process("again", objects)
    pipeline.run.run("k8smon.rescan", "again")
    changed = [fixed(objects[0]), *objects[1:]]
    pipeline.push_and_process("again", changed)
    plan = jobs.plan_scan(pipeline.ctx, "again", trigger="test")
    assert plan.live is not None
    other = [*changed[:3], fixed(objects[3]), *changed[4:]]  # a state no scan saw
    pipeline.push_and_process("again", other)
    if back:
        pipeline.push_and_process("again", changed)
    final = changed if back else other
    read = _reading_live(monkeypatch)
    outcome = pipeline.run.run_plan(plan)
    assert read == ["again"]
    newest = pipeline.session.scalar(
        select(func.max(KubeObject.current_version_id)).where(
            KubeObject.cluster_id == "again", KubeObject.deleted_at.is_(None)
        )
    )
    assert outcome["counts"]["version_watermark"] == newest
    if back:
        assert outcome["counts"]["unevaluated"] == 0
    else:  # a body changed outside the planned shard's ids: left for the next scan
        assert outcome["counts"]["unevaluated"] == 1
        pipeline.run.run("k8smon.rescan", "again")
    assert findings_of(pipeline, "again") == offline(final, "again")


def test_an_incremental_plan_of_many_changed_objects_joins_the_cache_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More changed objects than one probe of the cache takes (`store.bulk.CHUNK`): the
    uncached bodies are found by one join with the cache, as a plan that read no rows does."""
    objects = [config_map(f"cm-{i}", namespace="many") for i in range(CHUNK + 3)]
    pipeline.push_and_process("many", objects)
    pipeline.run.run("k8smon.rescan", "many")
    changed = [config_map(f"cm-{i}", namespace="many", data={"v": "2"}) for i in range(CHUNK + 3)]
    pipeline.push_and_process("many", changed)
    joined: list[str] = []
    real = rule_cache.uncached_objects

    def uncached_objects(session: Any, cluster_id: str, **kwargs: Any) -> Any:
        joined.append(cluster_id)
        return real(session, cluster_id, **kwargs)

    monkeypatch.setattr(rule_cache, "uncached_objects", uncached_objects)
    plan = jobs.plan_scan(pipeline.ctx, "many", trigger="test")
    assert plan.since is not None and joined == ["many"]
    assert sum(shard.size for shard in plan.shards) == CHUNK + 3
    outcome = pipeline.run.run_plan(plan)
    assert outcome["counts"]["objects"] == CHUNK + 3 and outcome["counts"]["unevaluated"] == 0
    assert findings_of(pipeline, "many") == offline(changed, "many")
