"""The results a scan hands from its inline step to finalize are those the cache gives back."""

from __future__ import annotations

import orjson

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
