"""The pipeline in-process on PostgreSQL: fleet scan, lifecycle, exemptions, incremental cache."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from contracts.resources import ResourceRef
from rules import Engine, ScanConfig
from rules.schema import _compiled_for
from store.exemptions import create_exemption
from store.findings import status_counts
from store.models import Exemption, Finding, RuleResultCache, ScanRun
from store.types import utcnow
from tests.support.factories import make_exemption
from tests.support.manifests import config_map
from tests.workers.conftest import Pipeline
from tests.workers.workloads import cluster_state, fixed, privileged
from workers import jobs


def fleet_scan(pipeline: Pipeline) -> list[dict]:
    """Run the fleet scan task in process; its per-cluster outcomes, in cluster order."""
    outcome = pipeline.run.run("k8smon.scan_fleet")
    assert [scan["cluster_id"] for scan in outcome["scans"]] == outcome["clusters"]
    return outcome["scans"]


def findings_of(pipeline: Pipeline, cluster_id: str, *statuses: str) -> set[tuple]:
    rows = pipeline.session.scalars(
        select(Finding).where(
            Finding.cluster_id == cluster_id,
            Finding.status.in_(statuses or ("new", "open", "exempted")),
        )
    )
    return {
        (
            f.rule_id,
            f"{f.api_version}|{f.kind}|{f.namespace or ''}|{f.name}",
            f.container,
            f.path or "",
        )
        for f in rows
    }


def offline(objects: list[dict], cluster_id: str, config: ScanConfig | None = None) -> set[tuple]:
    outcome = Engine.from_config(config).scan(objects, cluster=cluster_id)
    return {
        (r.rule_id, r.resource.key, r.container, r.path)
        for r in outcome.results
        if r.status != "error"
    }


def test_fleet_scan_of_three_clusters_gives_exactly_the_offline_findings(
    pipeline: Pipeline,
) -> None:
    states = {f"fleet-{n}": cluster_state(f"f{n}", 9 + n) for n in range(3)}
    for cluster_id, objects in states.items():
        pipeline.push_and_process(cluster_id, objects)
    pipeline.ctx.settings = pipeline.ctx.settings.replace(shard_size=4)

    outcomes = fleet_scan(pipeline)

    assert {o["cluster_id"] for o in outcomes} >= set(states)
    for cluster_id, objects in states.items():
        expected = offline(objects, cluster_id)
        assert expected, "the workloads have deliberate problems"
        assert findings_of(pipeline, cluster_id) == expected
        assert all(
            s == "new"
            for s in pipeline.session.scalars(
                select(Finding.status).where(Finding.cluster_id == cluster_id)
            )
        )
        run = pipeline.session.scalar(select(ScanRun).where(ScanRun.cluster_id == cluster_id))
        assert run.state == "done" and run.shard_count == -(-len(objects) // 4)
        assert run.counts["new"] == len(expected) and run.errors == []
        assert run.finished_at is not None and run.duration_s is not None


def test_new_then_open_then_resolved_across_scans(pipeline: Pipeline) -> None:
    bad = privileged("web", namespace="shop")
    pipeline.push_and_process("life", [bad])
    pipeline.run.run("k8smon.rescan", "life")
    first = findings_of(pipeline, "life", "new")
    assert any(rule == "KM-101" for rule, *_ in first)

    pipeline.run.run("k8smon.rescan", "life")
    assert findings_of(pipeline, "life", "new") == set()
    assert findings_of(pipeline, "life", "open") == first

    pipeline.push_and_process("life", [fixed(bad)])
    pipeline.run.run("k8smon.rescan", "life")
    resolved = pipeline.session.scalars(
        select(Finding).where(Finding.cluster_id == "life", Finding.rule_id == "KM-101")
    ).one()
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    assert resolved.first_seen < resolved.resolved_at
    # Other findings of the same workload are still open.
    assert status_counts(pipeline.session, "life")["open"] == len(first) - 1


def test_database_exemption_then_its_expiry(pipeline: Pipeline) -> None:
    pipeline.push_and_process("exempt", [privileged("agent", namespace="kube-system")])
    exemption = create_exemption(
        pipeline.session,
        rule_ids=["KM-101"],
        reason="the CNI needs it",
        created_by="sec",
        cluster_id="exempt",
        selector={"namespace": "kube-*", "name": "agent"},
        expires_at=utcnow() + timedelta(days=1),
    )
    pipeline.session.commit()
    pipeline.run.run("k8smon.rescan", "exempt")
    finding = pipeline.session.scalars(
        select(Finding).where(Finding.cluster_id == "exempt", Finding.rule_id == "KM-101")
    ).one()
    assert finding.status == "exempted" and finding.exemption_id == exemption.id

    # The expiry moment passes between this scan and the next.
    pipeline.session.execute(
        update(Exemption).where(Exemption.id == exemption.id).values(expires_at=utcnow())
    )
    pipeline.session.commit()
    pipeline.run.run("k8smon.rescan", "exempt")
    pipeline.session.refresh(finding)
    assert finding.status == "open" and finding.exemption_id is None


def test_database_exemption_labels_are_a_full_label_selector(pipeline: Pipeline) -> None:
    """A stored exemption's labels mean what they mean in the YAML: a Kubernetes selector
    (here a set expression), not key=value equality."""
    tier_a = privileged("a", namespace="infra")
    tier_a["metadata"]["labels"] = {"tier": "system"}
    tier_b = privileged("b", namespace="infra")
    tier_b["metadata"]["labels"] = {"tier": "web"}
    pipeline.push_and_process("sel", [tier_a, tier_b])
    exemption = make_exemption(
        pipeline.session,
        cluster_id="sel",
        selector={"labels": "tier in (system,node)"},
    )
    pipeline.session.commit()
    pipeline.run.run("k8smon.rescan", "sel")
    rows = pipeline.session.scalars(
        select(Finding).where(Finding.cluster_id == "sel", Finding.rule_id == "KM-101")
    ).all()
    by_name = {row.name: row for row in rows}
    assert by_name["a"].status == "exempted" and by_name["a"].exemption_id == exemption.id
    assert by_name["a"].details["exemption"]["source"] == "database"
    assert by_name["b"].status in {"new", "open"} and by_name["b"].exemption_id is None


def test_configuration_exemption_from_the_rules_file(
    make_pipeline: Callable[..., Pipeline], tmp_path: Path
) -> None:
    config = tmp_path / "rules.yaml"
    config.write_text(
        "exemptions:\n"
        "  - rules: [KM-101]\n    cluster: cfg\n    namespaces: ['infra']\n"
        "    reason: node agent\n    owner: platform\n",
        encoding="utf-8",
    )
    pipeline = make_pipeline(config_path=config)
    pipeline.push_and_process(
        "cfg", [privileged("a", namespace="infra"), privileged("b", namespace="apps")]
    )
    pipeline.run.run("k8smon.rescan", "cfg")
    rows = {
        (f.namespace, f.status)
        for f in pipeline.session.scalars(
            select(Finding).where(Finding.cluster_id == "cfg", Finding.rule_id == "KM-101")
        )
    }
    assert rows == {("infra", "exempted"), ("apps", "new")}
    exempted = pipeline.session.scalars(
        select(Finding).where(Finding.cluster_id == "cfg", Finding.status == "exempted")
    ).one()
    assert exempted.details["exemption"]["reason"] == "node agent"


def test_rescan_reuses_cached_results_and_evaluates_only_changes(pipeline: Pipeline) -> None:
    objects = cluster_state("inc", 12)
    pipeline.push_and_process("inc", objects)
    first = pipeline.run.run("k8smon.rescan", "inc")
    assert first["counts"]["evaluated"] == 12

    second = pipeline.run.run("k8smon.rescan", "inc")
    assert second["counts"]["evaluated"] == 0 and second["counts"]["unevaluated"] == 0

    changed = [*objects[1:], fixed(objects[0])]
    pipeline.push_and_process("inc", changed)
    third = pipeline.run.run("k8smon.rescan", "inc")
    assert third["counts"]["evaluated"] == 1
    assert third["counts"]["resolved"] == 1


def test_a_catalogue_change_invalidates_the_cache(
    make_pipeline: Callable[..., Pipeline], tmp_path: Path
) -> None:
    pipeline = make_pipeline()
    pipeline.push_and_process("cat", cluster_state("cat", 6))
    pipeline.run.run("k8smon.rescan", "cat")
    config = tmp_path / "rules.yaml"
    config.write_text("severity: {KM-101: low}\n", encoding="utf-8")
    retuned = make_pipeline(config_path=config)
    assert retuned.ctx.rules.catalogue_version != pipeline.ctx.rules.catalogue_version
    outcome = retuned.run.run("k8smon.rescan", "cat")
    assert outcome["counts"]["evaluated"] == 6
    severities = set(
        pipeline.session.scalars(
            select(Finding.severity).where(Finding.cluster_id == "cat", Finding.rule_id == "KM-101")
        )
    )
    assert severities == {"low"}
    versions = pipeline.session.scalar(
        select(func.count(func.distinct(RuleResultCache.catalogue_version)))
    )
    assert versions >= 2


def test_unevaluated_objects_keep_their_findings(pipeline: Pipeline) -> None:
    objects = [privileged("keep", namespace="a")]
    pipeline.push_and_process("uneval", objects)
    pipeline.run.run("k8smon.rescan", "uneval")
    before = findings_of(pipeline, "uneval")
    # A shard that never ran: its object's cached result is missing at finalize time.
    plan_ctx = pipeline.ctx
    pipeline.push_and_process("uneval", [*objects, config_map("new-one", namespace="a")])
    plan = jobs.plan_scan(plan_ctx, "uneval", trigger="test")
    assert not plan.finished
    key = ResourceRef.of(objects[0]).key
    pipeline.session.execute(RuleResultCache.__table__.delete())
    pipeline.session.commit()
    outcome = jobs.finalize_scan(
        plan_ctx,
        [jobs.evaluate_cluster_rules(plan_ctx, plan.scan_id, "uneval")],
        plan.scan_id,
        "uneval",
    )
    assert outcome["counts"]["unevaluated"] == 2 and outcome["counts"]["resolved"] == 0
    assert findings_of(pipeline, "uneval") == before
    assert any(k == key for _r, k, _c, _p in before)


def test_finalize_twice_changes_nothing(pipeline: Pipeline) -> None:
    pipeline.push_and_process("twice", [privileged("x")])
    plan = jobs.plan_scan(pipeline.ctx, "twice", trigger="test")
    results = [
        jobs.evaluate_shard(pipeline.ctx, plan.scan_id, "twice", s.index, s.first_id, s.last_id)
        for s in plan.shards
    ]
    results.append(jobs.evaluate_cluster_rules(pipeline.ctx, plan.scan_id, "twice"))
    # A redelivered shard inserts nothing twice.
    results.append(
        jobs.evaluate_shard(
            pipeline.ctx, plan.scan_id, "twice", 0, plan.shards[0].first_id, plan.shards[0].last_id
        )
    )
    first = jobs.finalize_scan(pipeline.ctx, results, plan.scan_id, "twice")
    again = jobs.finalize_scan(pipeline.ctx, results, plan.scan_id, "twice")
    assert again["already_done"] is True and again["counts"] == first["counts"]
    count = pipeline.session.scalar(
        select(func.count()).select_from(Finding).where(Finding.cluster_id == "twice")
    )
    assert count == first["counts"]["new"]


def test_incremental_finalize_matches_the_offline_scan_of_the_new_state(
    pipeline: Pipeline,
) -> None:
    objects = cluster_state("delta", 15)
    pipeline.push_and_process("delta", objects)
    first = pipeline.run.run("k8smon.rescan", "delta")
    assert first["counts"]["incremental"] == 0

    # Fix one privileged workload, delete another, add a new one; the rest is untouched.
    changed = [
        fixed(objects[0]),
        *objects[1:3],
        *objects[4:],
        privileged("delta-late", namespace="delta-ns9"),
    ]
    pipeline.push_and_process("delta", changed)
    second = pipeline.run.run("k8smon.rescan", "delta")

    assert second["counts"]["incremental"] == 1
    assert second["counts"]["reconciled_objects"] == 2  # the fixed and the new workload
    assert findings_of(pipeline, "delta") == offline(changed, "delta")
    assert second["counts"]["resolved"] >= 2 and second["counts"]["new"] >= 1
    assert second["counts"]["open"] + second["counts"]["new"] == len(
        findings_of(pipeline, "delta", "new", "open")
    )


def test_a_fleet_rescan_records_unchanged_clusters_without_scanning_them(
    pipeline: Pipeline,
) -> None:
    states = {f"still-{n}": cluster_state(f"s{n}", 6 + n) for n in range(3)}
    for cluster_id, objects in states.items():
        pipeline.push_and_process(cluster_id, objects)
    first = fleet_scan(pipeline)
    assert set(states) <= {o["cluster_id"] for o in first}
    expected = {cluster_id: findings_of(pipeline, cluster_id, "new") for cluster_id in states}

    # Nothing changed: no cluster is scanned, each gets a finished no-op run, and the first
    # scan's new findings are now open.
    assert fleet_scan(pipeline) == []
    for cluster_id in states:
        runs = pipeline.session.scalars(
            select(ScanRun).where(ScanRun.cluster_id == cluster_id).order_by(ScanRun.id)
        ).all()
        assert [r.state for r in runs] == ["done", "done"]
        assert runs[1].counts["unchanged"] == 1 and runs[1].shard_count == 0
        assert runs[1].counts["open"] == len(expected[cluster_id])
        assert runs[1].snapshot_digest == runs[0].snapshot_digest
        assert findings_of(pipeline, cluster_id, "new") == set()
        assert findings_of(pipeline, cluster_id, "open") == expected[cluster_id]

    # One cluster changes: only it is scanned.
    changed = [*states["still-1"][1:], fixed(states["still-1"][0])]
    pipeline.push_and_process("still-1", changed)
    third = fleet_scan(pipeline)
    assert [o["cluster_id"] for o in third] == ["still-1"]
    assert third[0]["counts"]["resolved"] >= 1

    # A new exemption may change any cluster's findings: every affected cluster is scanned.
    create_exemption(
        pipeline.session,
        rule_ids=["KM-101"],
        reason="accepted",
        created_by="sec",
        cluster_id="still-2",
        selector={},
    )
    pipeline.session.commit()
    fourth = fleet_scan(pipeline)
    assert [o["cluster_id"] for o in fourth] == ["still-2"]
    assert findings_of(pipeline, "still-2", "exempted")


def test_offline_and_server_fingerprints_are_the_same(pipeline: Pipeline) -> None:
    objects = cluster_state("fp", 8)
    pipeline.push_and_process("fp", objects)
    pipeline.run.run("k8smon.rescan", "fp")
    offline_fingerprints = {
        r.fingerprint
        for r in Engine.from_config(None).scan(objects, cluster="fp").results
        if r.status != "error"
    }
    stored = set(
        pipeline.session.scalars(select(Finding.fingerprint).where(Finding.cluster_id == "fp"))
    )
    assert offline_fingerprints and stored == offline_fingerprints
    assert all(len(f) == 64 for f in stored)


def test_a_one_shard_scan_evaluated_inline_gives_what_the_two_steps_give(
    pipeline: Pipeline,
) -> None:
    """`jobs.run_plan` evaluates a one-shard scan's shard and cluster rules in one unit of
    work (each body read and viewed once): same outcomes, same cached rows, same findings."""
    objects = cluster_state("inline", 10)
    pipeline.push_and_process("inline", objects)

    def cached() -> dict[str, list]:
        rows = pipeline.session.execute(
            select(RuleResultCache.content_hash, RuleResultCache.results)
        )
        return dict(rows.all())

    plan = jobs.plan_scan(pipeline.ctx, "inline", trigger="test")
    (shard,) = plan.shards
    two_steps = [
        jobs.evaluate_shard(pipeline.ctx, plan.scan_id, "inline", 0, shard.first_id, shard.last_id),
        jobs.evaluate_cluster_rules(pipeline.ctx, plan.scan_id, "inline"),
    ]
    separately = cached()
    pipeline.session.execute(RuleResultCache.__table__.delete())
    pipeline.session.commit()
    inline = jobs.evaluate_inline(pipeline.ctx, plan)
    assert inline == two_steps and two_steps[0]["evaluated"] == len(objects)
    assert cached() == separately
    jobs.finalize_scan(pipeline.ctx, inline, plan.scan_id, "inline")
    assert findings_of(pipeline, "inline") == offline(objects, "inline")


def test_the_bench_corpus_scans_to_the_offline_findings(pipeline: Pipeline) -> None:
    """The oracle on the benchmark's realistic mix (controllers and their pods, RBAC, network
    policies, CRDs...): the pipeline's findings are the offline scan's."""
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus

    objects = [o for o in generate(600, seed=1001) if o.get("kind") != "Secret"]
    pipeline.push_and_process("corpus", objects)
    outcome = pipeline.run.run("k8smon.rescan", "corpus")
    assert outcome["counts"]["evaluated"] > 0
    # the fleet rules (KM-621 drift) run in the fleet evaluation, offline in the scan
    pipeline.run.run("k8smon.evaluate_fleet")
    assert findings_of(pipeline, "corpus") == offline(objects, "corpus")


def validations() -> int:
    """Schema checks so far in this process: `rules.schema.validate` looks its release's
    schema up once per call, in an lru_cache, which counts calls from compiled callers too
    (a patched `validate` would not see them: compiled modules call each other directly)."""
    info = _compiled_for.cache_info()
    return info.hits + info.misses


def test_an_incremental_rescan_of_the_bench_corpus_matches_the_offline_scan(
    pipeline: Pipeline,
) -> None:
    """The benchmark's incremental rescan in small: 10% of the objects relabelled, one
    structurally invalid object left as it was, one made invalid, one made valid again, an
    invalid one added, one deleted. The findings are the offline scan's of the new state, and
    only the bodies the previous state did not hold were schema-checked again (the cluster
    step's record of valid bodies)."""
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus

    objects = [o for o in generate(400, seed=1002) if o.get("kind") != "Secret"]
    broken = copy.deepcopy(objects[5])
    broken["metadata"]["labels"] = "not-a-map"  # the schema wants an object
    objects[5] = broken
    repaired = objects[15]
    objects[15] = {**repaired, "metadata": {**repaired["metadata"], "labels": ["x"]}}
    pipeline.push_and_process("relabel", objects)
    pipeline.run.run("k8smon.rescan", "relabel")
    assert findings_of(pipeline, "relabel") == offline(objects, "relabel")

    changed = [copy.deepcopy(o) for o in objects]
    for index in range(0, len(changed), 10):
        meta = changed[index]["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), "bench-rev": "1"}
    changed[7]["metadata"]["labels"] = 7  # invalid now
    changed[15] = repaired
    late = copy.deepcopy(broken)
    late["metadata"]["name"] = "late-broken"
    changed = [o for i, o in enumerate(changed) if i != 11] + [late]
    new_bodies = len({json.dumps(o, sort_keys=True) for o in changed[::10]}) + 4

    pipeline.push_and_process("relabel", changed)
    before = validations()
    second = pipeline.run.run("k8smon.rescan", "relabel")
    checked = validations() - before
    assert 0 < checked <= new_bodies < len(changed) // 5
    assert second["counts"]["incremental"] == 1
    assert findings_of(pipeline, "relabel") == offline(changed, "relabel")


def test_an_incremental_rescan_leaves_the_findings_a_full_scan_gives(
    pipeline: Pipeline,
) -> None:
    """After an incremental rescan (object-rule findings reconciled only for the objects that
    changed, the cluster step's bodies schema-checked only when new) the findings, with their
    messages, severities and exemptions, are those a first scan of the new state gives, and
    the offline scan's. The change: 10% relabelled, where the new label is what a stored
    exemption of cluster and object rules selects, and a PodDisruptionBudget deleted (new
    cluster-rule findings on workloads that did not change)."""
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus

    make_exemption(
        pipeline.session,
        rule_ids=("KM-601", "KM-602", "KM-612", "KM-101"),
        selector={"labels": "bench-rev in (1)"},
    )
    pipeline.session.commit()
    objects = [o for o in generate(400, seed=1003) if o.get("kind") != "Secret"]
    pipeline.push_and_process("diff", objects)
    pipeline.run.run("k8smon.rescan", "diff")

    changed = [copy.deepcopy(o) for o in objects]
    for index in range(0, len(changed), 10):
        meta = changed[index]["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), "bench-rev": "1"}
    pdb = next(i for i, o in enumerate(changed) if o["kind"] == "PodDisruptionBudget")
    del changed[pdb]
    pipeline.push_and_process("diff", changed)
    second = pipeline.run.run("k8smon.rescan", "diff")
    assert second["counts"]["incremental"] == 1
    assert second["counts"]["exempted"] > 0

    pipeline.push_and_process("full", changed)
    assert pipeline.run.run("k8smon.rescan", "full")["counts"]["incremental"] == 0

    assert pipeline.active_findings("diff", exact=False) == pipeline.active_findings(
        "full", exact=False
    )
    assert findings_of(pipeline, "diff") == offline(changed, "diff")
