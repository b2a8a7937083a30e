"""The results a scan hands from its inline step to finalize are those the cache gives back."""

from __future__ import annotations

import orjson
import pytest

from bench.corpus import generate
from rules import psa
from workers.engine import EngineHandle


def test_kept_results_are_the_cached_records_read_back(rules_engine: EngineHandle) -> None:
    """`evaluate_view_kept` on the benchmark's mix (and judged at an older release with a
    namespace pin): its records are `evaluate_view`'s, and its results are what `result()`
    makes of those records after a JSON round trip through the cache, one for one."""
    objects = generate(400, seed=21)
    objects.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": 3})
    judged = rules_engine.at_versions(psa.parse_version("1.25"), {"default": None})
    total = 0
    for handle in (rules_engine, judged):
        for manifest in objects:
            records, results = handle.evaluate_view_kept(handle.view(manifest))
            assert records == handle.evaluate_view(handle.view(manifest))
            read_back = orjson.loads(orjson.dumps(records))
            assert results == [handle.result(record) for record in read_back]
            total += len(results)
    assert total > 400


def test_finalize_leaves_out_the_results_of_objects_reported_on_their_controller(
    rules_engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_object_candidates` (kept and cached results alike) leaves out what finalize would
    drop next: the results, not errors, of objects in `suppressed`; their error results and
    every result of the other objects stay, in order, and an object with no result is
    unevaluated whether suppressed or not."""
    from rules.model import Result  # noqa: PLC0415
    from workers.services import scanning  # noqa: PLC0415
    from workers.services.scanning import Evaluated, _object_candidates  # noqa: PLC0415

    monkeypatch.setattr(scanning.rule_cache, "cached_results", lambda *_a, **_k: {})

    objects = generate(200, seed=5)
    views = [rules_engine.view(manifest) for manifest in objects]
    evaluated = [rules_engine.evaluate_view_kept(view) for view in views]
    keys = [view.ref.key for view in views]
    known = Evaluated(rules_engine.catalogue_version)
    todo: dict[str, str] = {}
    for n, (key, (_records, results)) in enumerate(zip(keys, evaluated, strict=True)):
        broken = [r._replace(status="error", message="rule raised") for r in results[:1]]
        known.objects[f"h{n}"] = [*results, *broken]
        todo[key] = f"h{n}"
    todo["v1|Pod|x|never-evaluated"] = "missing"
    suppressed = {key for n, key in enumerate(keys) if n % 3 == 0} | {"v1|Pod|x|never-evaluated"}
    into: list = []
    unevaluated = _object_candidates(
        None,  # type: ignore[arg-type] - the cache holds nothing here
        todo,
        rules=rules_engine,
        known=known,
        into=into,
        suppressed=suppressed,
    )
    assert unevaluated == {"v1|Pod|x|never-evaluated"}
    expected: list[Result] = [
        result
        for chash in todo.values()
        for result in known.objects.get(chash, [])
        if result.is_error or result.resource.key not in suppressed
    ]
    assert [c.result for c in into] == expected
    assert any(c.result.is_error and c.result.resource.key in suppressed for c in into)
    assert not any(not c.result.is_error and c.result.resource.key in suppressed for c in into)
    assert len(expected) < sum(len(found) for found in known.objects.values())


def test_a_cached_record_reads_back_with_its_rule_metadata_and_any_severity_spelling(
    rules_engine: EngineHandle,
) -> None:
    """`result()` of a record: the rule's title, category, CIS and PSS ids put back (empty
    for a rule the catalogue no longer has), its severity parsed however it is spelled, and
    `cached_records` of results are `cached_record` of each, in order."""
    from contracts.severity import Severity  # noqa: PLC0415
    from workers.engine import cached_record, cached_records  # noqa: PLC0415

    views = [rules_engine.view(manifest) for manifest in generate(50, seed=8)]
    found = [r for view in views for r in rules_engine.engine.evaluate_object(view)]
    assert found
    assert cached_records(found) == [cached_record(r) for r in found]
    record = cached_records(found[:1])[0]
    back = rules_engine.result(record)
    assert (back.title, back.category, back.cis, back.pss) == (
        found[0].title,
        found[0].category,
        found[0].cis,
        found[0].pss,
    )
    odd = rules_engine.result({**record, "rule_id": "KM-GONE", "severity": " HIGH "})
    assert odd.severity is Severity.HIGH
    assert (odd.title, odd.category, odd.cis, odd.pss) == ("", "", (), ())
