"""The fast snapshot pre-check never accepts what jsonschema (the wire schema, with its size
limits) refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.wire import SNAPSHOT_JSON_SCHEMA
from ingest.body import validator_for
from ingest.fastcheck import snapshot_surely_valid
from tests.support.manifests import cluster_objects, delta_envelope, full_envelope


def _jsonschema_valid(document: Any) -> bool:
    return validator_for(SNAPSHOT_JSON_SCHEMA).is_valid(document)


def _valid_documents() -> list[dict[str, Any]]:
    base = cluster_objects(4)
    delta, _ = delta_envelope(base=base, changed=[cluster_objects(5)[4]], removed=[base[0]])
    return [full_envelope(base), delta, full_envelope([])]


@pytest.mark.parametrize("document", _valid_documents())
def test_valid_documents_take_the_fast_path(document: dict[str, Any]) -> None:
    assert _jsonschema_valid(document)
    assert snapshot_surely_valid(document)


MUTATIONS = [
    lambda d: d.pop("digest"),
    lambda d: d.update(digest="sha256:XYZ"),
    lambda d: d.update(type="partial"),
    lambda d: d.update(schema="k8s-monitor/snapshot/v2"),
    lambda d: d.update(extra=1),
    lambda d: d.update(agent_version="v" * 65),
    lambda d: d.update(collected_at="t" * 41),
    lambda d: d.update(objects={}),
    lambda d: d["objects"].append("not an object"),
    lambda d: d["objects"][0].pop("kind"),
    lambda d: d["objects"][0].update(apiVersion=""),
    lambda d: d["objects"][0]["metadata"].update(name=7),
    lambda d: d["objects"][0]["metadata"].update(namespace=None),
    lambda d: d["objects"][0]["metadata"].update(uid="u" * 65),
    lambda d: d["objects"][0].update(metadata=[]),
    lambda d: d.update(removed=[{"apiVersion": "v1", "kind": "Pod"}]),
    lambda d: d.update(type="delta"),
    lambda d: d.update(base_digest=5),
]


@pytest.mark.parametrize("mutate", MUTATIONS)
def test_invalid_documents_are_left_to_jsonschema(mutate: Any) -> None:
    document = copy.deepcopy(full_envelope(cluster_objects(3)))
    mutate(document)
    assert not _jsonschema_valid(document)
    assert not snapshot_surely_valid(document)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_PATHS = [
    ("digest",),
    ("base_digest",),
    ("type",),
    ("schema",),
    ("agent_version",),
    ("objects", 0),
    ("objects", 0, "apiVersion"),
    ("objects", 0, "metadata"),
    ("objects", 0, "metadata", "name"),
    ("objects", 0, "metadata", "namespace"),
    ("objects", 0, "metadata", "uid"),
    ("removed",),
    ("collected_at",),
]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(path=st.sampled_from(_PATHS), value=_JSON)
def test_fast_path_implies_jsonschema_valid(path: tuple[Any, ...], value: Any) -> None:
    document = copy.deepcopy(full_envelope(cluster_objects(2)))
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    if snapshot_surely_valid(document):
        assert _jsonschema_valid(document)
