"""store.images on both engines: each image once per workload, every container kind."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from store.images import fleet_images
from store.search import SearchTimeout
from tests.support.factories import make_cluster
from tests.support.manifests import deployment
from tests.support.workloads import workloads
from tests.web.fleet import push


def test_images_once_per_workload_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    push(session, "a", workloads())
    push(session, "b", [deployment("web", namespace="shop", image="shop/web:2")])
    found, truncated = fleet_images(session, timeout_seconds=30)
    assert not truncated
    assert [(i.image, len(i.workloads), i.clusters) for i in found] == [
        ("shop/web:2", 3, ["a", "b"]),
        ("busybox:1", 1, ["a"]),
        ("nicolaka/netshoot:1", 1, ["a"]),
        ("ops/backup:7", 1, ["a"]),
        ("shop/web:1", 1, ["a"]),
    ]
    assert found[0].as_json()["kinds"] == ["Deployment", "Pod"]
    only_b, _ = fleet_images(session, timeout_seconds=30, cluster_ids=["b"])
    assert [(i.image, len(i.workloads)) for i in only_b] == [("shop/web:2", 1)]
    top, cut = fleet_images(session, timeout_seconds=30, limit=1)
    assert [i.image for i in top] == ["shop/web:2"] and cut
    with pytest.raises(SearchTimeout):
        fleet_images(session, timeout_seconds=1e-9)
