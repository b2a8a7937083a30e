"""Invalid manifests are reported with the offending field, never scanned as clean."""

from __future__ import annotations

import datetime as dt
import json
import marshal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules import Engine, ObjectView, schema

K8SMON = Path(sys.executable).with_name("k8smon")


def _pod(name: str, spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


PRIVILEGED = {"name": "c", "image": "registry.example/c:1", "securityContext": {"privileged": True}}


def test_the_schemas_ship_with_the_dependencies() -> None:
    assert schema.available()


@pytest.mark.parametrize(
    ("manifest", "path", "message"),
    [
        (
            _pod("spec-list", [{"containers": [PRIVILEGED]}]),
            "spec",
            "expected a mapping, found a list",
        ),
        (_pod("containers-map", {"containers": PRIVILEGED}), "spec.containers", "found a mapping"),
        (
            _pod("port-text", {"containers": [{**PRIVILEGED, "ports": [{"containerPort": "80"}]}]}),
            "spec.containers[0].ports[0].containerPort",
            "expected an integer, found a string",
        ),
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d", "labels": {"version": 1.5}},
                "spec": {"template": {"spec": {"containers": [PRIVILEGED]}}},
            },
            "metadata.labels.version",
            "expected a string, found a number",
        ),
    ],
)
def test_structural_problems_name_the_field(
    manifest: dict[str, Any], path: str, message: str
) -> None:
    problems = schema.validate(manifest)
    assert problems, manifest
    assert problems[0].path == path
    assert message in problems[0].message
    outcome = Engine.from_config(None).scan([manifest])
    assert [e["type"] for e in outcome.errors] == ["invalid"]
    assert outcome.errors[0]["path"] == path
    assert outcome.results == ()  # no rule ran on it: not "clean", not half-scanned


def test_valid_objects_and_unknown_kinds_are_not_refused() -> None:
    assert schema.validate(_pod("ok", {"containers": [PRIVILEGED]})) == ()
    assert schema.validate({"apiVersion": "example.com/v1", "kind": "Widget", "spec": [1]}) == ()
    # intOrString and quantities accept both forms; null means unset.
    container = {
        "name": "c",
        "image": "i:1",
        "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
        "livenessProbe": {"httpGet": {"port": "http"}},
        "readinessProbe": {"httpGet": {"port": 8080}},
        "securityContext": None,
    }
    assert schema.validate(_pod("ok", {"containers": [container]})) == ()
    assert not ObjectView(_pod("ok", {"containers": [container]})).problems


def test_the_server_path_skips_invalid_objects_like_the_offline_scan() -> None:
    engine = Engine.from_config(None)
    bad = _pod("containers-map", {"containers": PRIVILEGED})
    assert engine.evaluate_object(bad) == []
    assert engine.evaluate_cluster([bad, _pod("good", {"containers": [PRIVILEGED]})])
    assert not [r for r in engine.evaluate_cluster([bad]) if r.resource.name == "containers-map"]


def test_k8smon_scan_reports_invalid_objects_and_scans_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(
        json.dumps(_pod("broken", [{"containers": [PRIVILEGED]}]))
        + "\n---\n"
        + json.dumps(_pod("fine", {"containers": [PRIVILEGED]}))
        + "\n"
    )
    done = subprocess.run(
        [str(K8SMON), "scan", str(path), "--format", "json", "--fail-on", "critical"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1  # the valid privileged pod still fails the gate
    (error,) = report["errors"]
    assert error["type"] == "invalid" and error["path"] == "spec"
    assert error["resource"]["name"] == "broken" and error["line"] == 1
    assert "not a valid Pod" in error["message"]
    assert {f["resource"]["name"] for f in report["findings"]} == {"fine"}
    assert report["summary"]["objects"] == 2 and report["summary"]["errors"] == 1


def _mutations(value: Any) -> Iterator[Any]:
    """`value` with one field (at any depth) replaced by a value of another JSON type (or a
    type no JSON parser yields: a YAML date, a tuple), or with a field the schema does not
    describe added."""
    bad: tuple[Any, ...] = (
        7,
        1.5,
        True,
        "oops",
        [],
        ["oops", 7],
        [{"a": 1}],
        None,
        {},
        {"a": 7},
        dt.date(2026, 1, 1),
        ("oops",),
    )
    if isinstance(value, dict):
        for key, item in value.items():
            for replacement in (*bad, *_mutations(item)):
                yield {**value, key: replacement}
        for replacement in bad:
            yield {**value, "notAField": replacement}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for replacement in (*bad, *_mutations(item)):
                yield [*value[:index], replacement, *value[index + 1 :]]


def test_the_quick_check_agrees_with_the_walk_that_finds_paths() -> None:
    """`validate` answers most objects with the path-free check (`_valid`), and only walks
    (keeping paths) an object it refuses: both must judge every value alike."""
    fixtures = Path(__file__).parent / "fixtures"
    manifests = [
        manifest
        for path in sorted(fixtures.glob("KM-1[0-2]*/*.yaml"))[:40]
        for manifest in yaml.safe_load_all(path.read_text())
        if isinstance(manifest, dict)
    ]
    checked = refused = 0
    for manifest in manifests:
        compiler = schema._compiled_for(None)
        gvk = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
        name = schema._kinds(compiler.release).get(gvk)
        if name is None:
            continue
        root = compiler.node({"$ref": name})
        for mutated in _mutations(manifest):
            problems: list[schema.SchemaProblem] = []
            schema._walk(mutated, root, [], problems)
            assert schema._valid(mutated, root) == (not problems), mutated
            checked += 1
            refused += bool(problems)
    assert checked > 1000 and 0 < refused < checked


def _deployment(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


class _Text(str):
    """A string subclass (no parser yields one): the schema refuses it where text belongs."""


def _remembered() -> list[set[bytes]]:
    """The memory of valid values: the serialisations each schema node keeps (`seen`)."""
    return [n.seen for c in schema._COMPILED.values() for n in c.by_ref.values() if n.seen]


def test_a_repeated_container_is_not_walked_again() -> None:
    """A container serialised exactly as one found valid before is valid without a walk.

    Observed through the memory itself (not by patching `_valid_map`, which the compiled
    schema calls directly): a container the walk refuses, planted there, is answered from it."""
    schema.forget_remembered()
    container = {**PRIVILEGED, "ports": [{"containerPort": 80}], "env": [{"name": "A"}]}
    assert schema.validate(_deployment(container)) == ()
    (seen,) = _remembered()
    assert seen == {marshal.dumps(container, 2)}  # the container itself was remembered
    refused = {**container, "ports": [{"containerPort": "eighty"}]}
    assert schema.validate(_deployment(refused)) != ()  # walked, refused, not remembered
    assert seen == {marshal.dumps(container, 2)}
    seen.add(marshal.dumps(refused, 2))
    assert schema.validate(_deployment(json.loads(json.dumps(refused)))) == ()  # not walked
    schema.forget_remembered()
    assert not seen
    assert schema.validate(_deployment(refused)) != ()  # forgotten: walked again


PORT = "spec.template.spec.containers[0].ports[0]"


@pytest.mark.parametrize(
    ("remembered", "bad", "path"),
    [
        ({"ports": [{"containerPort": 1}]}, {"ports": [{"containerPort": True}]}, PORT),
        ({"ports": [{"containerPort": 80}]}, {"ports": [{"containerPort": 80.0}]}, PORT),
        ({"ports": [{"containerPort": None}]}, {"ports": [{"containerPort": float("nan")}]}, PORT),
        (
            {"ports": [{"containerPort": 80, "name": "http"}]},
            {"ports": [{"containerPort": 80, "name": _Text("http")}]},
            f"{PORT}.name",
        ),
        (
            {"ports": [{"containerPort": 80, "hostIP": "2026-01-01"}]},
            {"ports": [{"containerPort": 80, "hostIP": dt.date(2026, 1, 1)}]},
            f"{PORT}.hostIP",
        ),
        ({"args": ["a"]}, {"args": ("a",)}, "spec.template.spec.containers[0].args"),
    ],
)
def test_a_remembered_container_does_not_answer_for_a_different_one(
    remembered: dict[str, Any], bad: dict[str, Any], path: str
) -> None:
    """What the memory of valid containers compares is exact: a value equal to a remembered
    one in Python (True == 1 == 1.0) or serialised alike by a JSON encoder (NaN and null, a
    tuple and a list, a str subclass and a str, a date and its text) is still walked, and
    refused where the schema refuses it."""
    schema.forget_remembered()
    assert schema.validate(_deployment({**PRIVILEGED, **remembered})) == ()
    problems = schema.validate(_deployment({**PRIVILEGED, **bad}))
    assert problems and problems[0].path.startswith(path), problems
