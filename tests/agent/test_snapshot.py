"""Full and delta snapshots: contents, digests, and the gzip JSON envelope on the wire."""

from __future__ import annotations

import gzip
import json

import jsonschema

from agent.collect import FAILED, Collection, Entry, Gap
from agent.snapshot import AckedState, delta_plan, encode, full_plan
from contracts.hashing import content_hash, state_digest
from contracts.resources import ResourceRef
from contracts.wire import SNAPSHOT_JSON_SCHEMA
from tests.fakes.kube_objects import config_map, deployment


def _collection(*objects: dict) -> Collection:
    collection = Collection()
    for obj in objects:
        collection.entries[ResourceRef.of(obj).key] = Entry.of(obj)
    return collection


def _decode(body: bytes) -> dict:
    document = json.loads(gzip.decompress(body))
    jsonschema.validate(document, SNAPSHOT_JSON_SCHEMA)
    return document


A = config_map("a", namespace="shop")
B = config_map("b", namespace="shop")
C = deployment("c", namespace="shop")


def test_full_plan_lists_everything_with_the_state_digest() -> None:
    plan = full_plan(_collection(A, B, C))
    assert plan.type == "full"
    assert plan.base_digest is None
    expected = state_digest((ResourceRef.of(o).key, content_hash(o)) for o in (A, B, C))
    assert plan.digest == expected
    document = _decode(encode(plan, collected_at="2026-01-05T10:00:00Z", agent_version="t"))
    assert document["type"] == "full"
    assert document["digest"] == expected
    assert sorted(o["metadata"]["name"] for o in document["objects"]) == ["a", "b", "c"]
    assert [content_hash(o) for o in document["objects"]] == [content_hash(o) for o in (A, B, C)]


def test_delta_has_added_changed_and_removed_against_the_base() -> None:
    base = full_plan(_collection(A, B, C)).acked()
    b2 = config_map("b", namespace="shop", data={"changed": "yes"})
    d = config_map("d", namespace="shop")
    plan = delta_plan(_collection(A, b2, d), base)
    assert plan.type == "delta"
    assert plan.base_digest == base.digest
    assert plan.digest == full_plan(_collection(A, b2, d)).digest
    document = _decode(encode(plan, collected_at="2026-01-05T10:00:00Z", agent_version="t"))
    assert sorted(o["metadata"]["name"] for o in document["objects"]) == ["b", "d"]
    assert document["removed"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "c"}
    ]
    assert document["base_digest"] == base.digest


def test_unchanged_state_gives_an_empty_delta_with_the_same_digest() -> None:
    base = full_plan(_collection(A, B)).acked()
    plan = delta_plan(_collection(A, B), base)
    assert plan.packed_bodies == [] and plan.removed == []
    assert plan.digest == base.digest


def test_kinds_that_failed_to_list_are_carried_over_not_removed() -> None:
    base = full_plan(_collection(A, B, C)).acked()
    current = _collection(A, B)
    current.gaps.append(
        Gap(name="deployments.apps", reason=FAILED, api_version="apps/v1", kind="Deployment")
    )
    plan = delta_plan(current, base)
    assert plan.removed == []
    assert plan.digest == base.digest


def test_applying_a_delta_to_the_base_gives_the_new_state() -> None:
    base = full_plan(_collection(A, B, C)).acked()
    b2 = config_map("b", namespace="shop", data={"v": "2"})
    plan = delta_plan(_collection(A, b2), base)
    document = json.loads(gzip.decompress(encode(plan, collected_at="x", agent_version="t")))
    state = dict(base.hashes)
    for ref in document["removed"]:
        del state[ResourceRef.from_dict(ref).key]
    for obj in document["objects"]:
        state[ResourceRef.of(obj).key] = content_hash(obj)
    assert state_digest(state.items()) == plan.digest == document["digest"]
    assert AckedState(plan.digest, state) == plan.acked()
