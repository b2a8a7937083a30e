"""The cluster step's cached object facts are `ObjectFacts.to_dict` of `object_facts`."""

from __future__ import annotations

from typing import Any

from rules import ClusterContext
from rules.config import EXEMPT_ANNOTATION
from rules.engine import object_facts
from workers.engine import _cached_facts


def _pod(name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", **metadata},
        "data": {},
    }


def test_cached_facts_are_the_object_facts_in_their_cached_form() -> None:
    from bench.corpus import generate  # noqa: PLC0415 - the benchmark's corpus

    odd = [
        _pod("plain", {}),
        _pod("numbers", {"labels": {"a": 1, "b": True}}),
        _pod("exempt", {"annotations": {EXEMPT_ANNOTATION: "KM-101"}}),
        _pod("empty-exempt", {"annotations": {EXEMPT_ANNOTATION: ""}}),
        _pod("not-text", {"annotations": {EXEMPT_ANNOTATION: 5, "other": "x"}}),
        _pod("other-only", {"annotations": {"other": "x"}}),
        _pod("both", {"labels": {"x": "y"}, "annotations": {EXEMPT_ANNOTATION: "*"}}),
    ]
    context = ClusterContext([*generate(300, seed=7), *odd])
    expected = {
        key: facts.to_dict()
        for key, facts in object_facts(context).items()
        if facts.labels or facts.exempt
    }
    assert _cached_facts(context) == expected
    assert list(_cached_facts(context)) == list(expected)
