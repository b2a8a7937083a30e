"""ResourceRef: its key is built once from the four fields and is not part of its identity."""

from __future__ import annotations

import dataclasses
import pickle

from contracts.resources import ResourceRef


def test_key_is_built_from_the_fields() -> None:
    assert ResourceRef("apps/v1", "Deployment", "shop", "web").key == "apps/v1|Deployment|shop|web"
    assert ResourceRef("v1", "Namespace", None, "shop").key == "v1|Namespace||shop"
    namespace = ResourceRef("v1", "Namespace", None, "shop")
    assert ResourceRef.from_key("v1|Namespace||shop") == namespace


def test_key_follows_a_changed_copy_and_a_round_trip() -> None:
    ref = ResourceRef("v1", "Pod", "shop", "web-1")
    assert dataclasses.replace(ref, name="web-2").key == "v1|Pod|shop|web-2"
    assert pickle.loads(pickle.dumps(ref)).key == ref.key


def test_identity_is_the_four_fields() -> None:
    ref = ResourceRef("v1", "Pod", "shop", "web-1")
    same = ResourceRef("v1", "Pod", "shop", "web-1")
    assert ref == same and hash(ref) == hash(same)
    assert repr(ref) == "ResourceRef(api_version='v1', kind='Pod', namespace='shop', name='web-1')"
    assert ResourceRef.__match_args__ == ("api_version", "kind", "namespace", "name")
    assert sorted([same, ResourceRef("v1", "Pod", "shop", "a")])[0].name == "a"
