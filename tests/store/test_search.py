"""The one JSON-path search (store.search): the same dialect and answers on PostgreSQL and
SQLite, its refusals, and its one time limit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from store.jsonpath import PathSyntaxError, parse
from store.search import SearchError, SearchTimeout, run_search
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment
from tests.web.fleet import push

LIMIT = 30.0  # generous: these tests are about answers, not speed


def search(session: Session, path: str, **options: Any) -> Any:
    return run_search(session, path, timeout_seconds=LIMIT, **options)


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-pod-{name}"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [
                {"name": "app", "image": "shop/app:3", "ports": [{"containerPort": 8080}]},
                {
                    "name": "sidecar",
                    "image": "envoy:1.30",
                    "securityContext": {"privileged": True},
                    "ports": [{"containerPort": 9901}, {"containerPort": 15000}],
                },
            ],
            "ephemeralContainers": [{"name": "debug", "image": "busybox:1"}],
        },
    }


def cron_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "ops", "uid": f"uid-cj-{name}"},
        "spec": {
            "schedule": "0 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "job", "image": "ops/backup:7"}]}}
                }
            },
        },
    }


# (path, the values expected over the fleet below, as a sorted list of JSON texts)
SAME_ON_BOTH: list[tuple[str, list[Any]]] = [
    (
        "$..image",
        [
            "busybox:1",
            "busybox:1",
            "envoy:1.30",
            "img:1",
            "img:2",
            "ops/backup:7",
            "shop/app:3",
        ],
    ),
    ("$.spec..containers[*].image", ["envoy:1.30", "img:1", "img:2", "ops/backup:7", "shop/app:3"]),
    ("$..['image']", None),  # same as $..image (checked below)
    ("$.spec.containers[?(@.securityContext.privileged == true)].name", ["sidecar"]),
    ("$.spec.containers[?(@.ports[*].containerPort >= 9000)].name", ["sidecar"]),
    ("$.spec.containers[?(@.securityContext)].image", ["envoy:1.30"]),
    ("$.spec.containers[?(!(@.securityContext.privileged == true))].name", ["app"]),
    ("$.spec.containers[?(@.name == 'app' || @.name == \"sidecar\")].ports[*]", None),
    ("$.spec.template.spec.containers[?(@.image != 'img:1')].image", ["img:2"]),
    ("$.spec.containers[0].name", ["app"]),
    ("$.spec.containers.name", ["app", "sidecar"]),  # lax: a member of an array's elements
    ("$.metadata['namespace']", ["default", "default", "default", "ops", "shop"]),
    ("$.data.*", ["settings"]),
    ("$..containerPort", [8080, 9901, 15000]),
    ("$.spec.missing[*].image", []),
]


@pytest.fixture
def fleet(any_db_session: Session) -> Session:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    push(
        session,
        "a",
        [deployment("x", image="img:1"), deployment("y", image="img:2"), pod("p"), cron_job("c")],
    )
    push(session, "b", [config_map("settings")])
    return session


def _values(result: Any) -> list[str]:
    return sorted(json.dumps(v, sort_keys=True) for m in result.matches for v in m.values)


@pytest.mark.parametrize(("path", "expected"), SAME_ON_BOTH)
def test_the_same_queries_answer_the_same_on_both_engines(
    fleet: Session, path: str, expected: list[Any] | None
) -> None:
    found = search(fleet, path)
    if path == "$..['image']":
        assert _values(found) == _values(search(fleet, "$..image"))
        return
    if expected is None:
        assert _values(found) == sorted(
            json.dumps(p, sort_keys=True)
            for p in ({"containerPort": 8080}, {"containerPort": 9901}, {"containerPort": 15000})
        )
        return
    assert _values(found) == sorted(json.dumps(v) for v in expected)


def test_recursive_descent_counts_each_image_once(fleet: Session) -> None:
    distinct = search(fleet, "$..image", distinct=True)
    assert [(v.value, v.occurrences, v.clusters) for v in distinct.values] == [
        ("busybox:1", 2, 1),
        ("envoy:1.30", 1, 1),
        ("img:1", 1, 1),
        ("img:2", 1, 1),
        ("ops/backup:7", 1, 1),
        ("shop/app:3", 1, 1),
    ]


def test_python_evaluation_equals_postgresql_jsonpath(db_session: Session) -> None:
    """The dialect's Python evaluator against PostgreSQL's own, path by path, on one body."""
    body = {
        "a": [
            {"image": "z", "t": True, "n": None, "num": 1, "p": [80, "x"]},
            {"b": {"image": "y"}, "p": [80, 443], "s": "b"},
            [{"image": "nested"}],
            "text",
        ],
        "image": "top",
        "o": {"k": {"image": "deep", "list": [{"image": "in-list"}]}},
    }
    paths = [
        "$..image",
        "$.a[*].image",
        "$.a.image",
        "$.a[*].b.image",
        "$.a[0].*",
        "$.a.*",
        "$.o.*",
        "$.a[5]",
        "$.image[0]",
        "$.image[*]",
        "$.o..image",
        "$..list[*].image",
        "$.a[?(@.p == 80)].s",
        "$.a[?(@.p[*] > 100)].s",
        "$.a[?(@.t == 1)]",
        "$.a[?(!(@.t == 1))].s",
        "$.a[?(@.n == 'x')].image",
        "$.a[?(!(@.n == 'x'))].image",
        "$.a[?(!(@.n < 1))].image",
        "$.a[?(@.n <= null)].image",
        "$.a[?(@.num == 1.0)].image",
        "$.a[?(@.image < 1)]",
        "$.a[?(!exists_is_not_a_word)]",
        "$.a[?(@.image == 'z' && @.x == 1)]",
        "$.a[?(!(@.image == 'z' && @.x == 1))].s",
        "$.a[?(@.image > 'a' || @.s)].p",
        "$.a[?(@.t > false)].image",
        "$.a[?(@.s == @.num)]",
        "$.a[?(@)]",
    ]
    for path in paths:
        try:
            compiled = parse(path)
        except PathSyntaxError:
            assert path == "$.a[?(!exists_is_not_a_word)]"
            continue
        stages = compiled.postgres_stages()
        if len(stages) == 1:
            expected = db_session.execute(
                text("SELECT jsonb_path_query_array(CAST(:b AS jsonb), CAST(:p AS jsonpath))"),
                {"b": json.dumps(body), "p": stages[0]},
            ).scalar_one()
        else:
            expected = None
        python = compiled.find(body)
        if expected is not None:
            assert sorted(json.dumps(v, sort_keys=True) for v in python) == sorted(
                json.dumps(v, sort_keys=True) for v in expected
            ), path
        else:
            assert python, path


def test_invalid_paths_are_refused_on_both_engines(fleet: Session) -> None:
    for path, why in [
        ("$.spec[", "expected an index"),
        ("  ", "give a JSON path"),
        ("strict $.spec", "at character 1"),
        ("$..*", "member name"),
        ("$.a[?(@..b)]", "not supported inside a filter"),
        ("$.a[?('x')]", "a value alone"),
        ("$." + "a." * 600, "longer than"),
        ("$['unterminated", "unterminated"),
    ]:
        with pytest.raises(SearchError, match=why):
            search(fleet, path)
    # The session is still usable after a refused path.
    assert search(fleet, "$.kind", cluster_ids=["b"]).hits[0].value == "ConfigMap"


def test_search_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "a")
    make_cluster(session, "b")
    push(
        session,
        "a",
        [deployment("x", image="img:1"), deployment("y", image="img:2"), config_map("c")],
    )
    push(session, "b", [deployment("x", image="img:1")])
    distinct = search(
        session, "$.spec.template.spec.containers[*].image", kind="Deployment", distinct=True
    )
    assert [(v.value, v.occurrences, v.clusters) for v in distinct.values] == [
        ("img:1", 2, 2),
        ("img:2", 1, 1),
    ]
    hits = search(session, "$.spec.replicas", cluster_ids=["a"])
    assert sorted((h.name, h.value) for h in hits.hits) == [("x", 2), ("y", 2)]
    limited = search(session, "$.metadata.name", limit=2)
    assert len(limited.hits) == 2 and limited.truncated
    assert search(session, "$.kind", cluster_ids=["b"]).hits[0].value == "Deployment"


def test_search_over_several_clusters_on_both_engines(any_db_session: Session) -> None:
    session = any_db_session
    for cluster_id in ("a", "b", "c"):
        make_cluster(session, cluster_id)
        push(
            session,
            cluster_id,
            [deployment("x", image=f"img:{cluster_id}"), deployment("y", image="img:shared")],
        )
    path = "$.spec.template.spec.containers[*].image"
    two = search(session, path, cluster_ids=["a", "c"], distinct=True)
    assert [(v.value, v.occurrences, v.clusters) for v in two.values] == [
        ("img:shared", 2, 2),
        ("img:a", 1, 1),
        ("img:c", 1, 1),
    ]
    hits = search(session, path, cluster_ids=["c", "b"])
    assert [(h.cluster_id, h.name) for h in hits.hits] == [
        ("b", "x"),
        ("b", "y"),
        ("c", "x"),
        ("c", "y"),
    ]
    every = search(session, path, cluster_ids=[], distinct=True)
    assert every.values[0].value == "img:shared" and every.values[0].clusters == 3


def _heavy(name: str) -> dict[str, Any]:
    """A manifest with many nested nodes, so that `$..x` has real work to do."""
    body = config_map(name)
    body["data"] = {f"k{i}": "v" for i in range(50)}
    body["metadata"]["annotations"] = {"bulk": "x"}
    body["spec"] = {"items": [{"n": {"m": [i, {"x": i}]}} for i in range(2000)]}
    return body


def test_a_search_past_its_time_limit_is_a_search_timeout(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "slow")
    push(session, "slow", [_heavy(f"heavy-{i}") for i in range(10)])
    with pytest.raises(SearchTimeout, match=r"longer than its 0\.001 s limit"):
        run_search(session, "$..x", timeout_seconds=0.001, distinct=True)
    # The session is still usable, and the limit no longer applies to what follows.
    answer = run_search(session, "$.kind", timeout_seconds=LIMIT, distinct=True)
    assert [(v.value, v.occurrences) for v in answer.values] == [("ConfigMap", 10)]
    if session.get_bind().dialect.name == "postgresql":
        assert session.execute(text("SHOW statement_timeout")).scalar_one() in ("0", "0ms")
