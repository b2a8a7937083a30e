"""Input formats: multi-document YAML, JSON, `kind: List`, directories; errors with lines."""

from __future__ import annotations

import json
from pathlib import Path

from rules import Engine, load_paths, parse_text

MULTI = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: one}
---
# a comment-only document is fine

---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers: [{name: c, image: "x:1"}]
...
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: three}
spec: {anything: [1, 2]}
"""


def test_multi_document_yaml_with_lines_and_crds() -> None:
    loaded = parse_text(MULTI, source="m.yaml")
    assert loaded.errors == []
    assert [(d.manifest["metadata"]["name"], d.line) for d in loaded.documents] == [
        ("one", 1),
        ("two", 8),
        ("three", 15),
    ]
    assert loaded.documents[2].manifest["spec"] == {"anything": [1, 2]}  # carried through


def test_kind_list_as_printed_by_kubectl() -> None:
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}},
            {
                "apiVersion": "v1",
                "kind": "PodList",
                "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}],
            },
        ],
    }
    for text in (
        json.dumps(listing),
        "kind: List\napiVersion: v1\nitems:\n"
        "- {apiVersion: v1, kind: Pod, metadata: {name: a}}\n"
        "- {apiVersion: v1, kind: PodList, items: "
        "[{apiVersion: v1, kind: Pod, metadata: {name: b}}]}\n",
    ):
        loaded = parse_text(text, source="l")
        assert [d.manifest["metadata"]["name"] for d in loaded.documents] == ["a", "b"]


def test_json_array_and_json_errors_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "a.json"
    good.write_text(
        json.dumps([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}])
    )
    bad = tmp_path / "b.json"
    bad.write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')
    loaded = load_paths([good, bad])
    assert [d.manifest["kind"] for d in loaded.documents] == ["Namespace"]
    assert len(loaded.errors) == 1
    assert loaded.errors[0].source == str(bad) and loaded.errors[0].line == 4


def test_yaml_parse_error_names_file_and_line_and_other_documents_survive(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"
        "---\n"
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n"
        "---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: after}\n"
    )
    other = tmp_path / "other.yml"
    other.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n")
    loaded = load_paths([path, other])
    assert [d.manifest["metadata"]["name"] for d in loaded.documents] == ["ok", "after", "fine"]
    assert len(loaded.errors) == 1
    error = loaded.errors[0]
    assert error.source == str(path)
    assert error.line == 8  # the broken document spans lines 5-8
    outcome = Engine.from_config(None).scan(
        loaded.documents, load_errors=[e.to_dict() for e in loaded.errors]
    )
    assert outcome.objects == 3
    assert outcome.errors[0]["file"] == str(path)


def test_directories_recursively_skip_non_manifests(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\n"
    )
    (tmp_path / "values.yaml").write_text("replicaCount: 2\n")
    (tmp_path / "README.md").write_text("apiVersion: v1\nkind: Pod\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hidden}\n"
    )
    loaded = load_paths([tmp_path])
    assert [d.manifest["metadata"]["name"] for d in loaded.documents] == ["deep"]
    assert loaded.errors == [] and loaded.skipped == 1
    # Named explicitly, a non-Kubernetes document is an error.
    explicit = load_paths([tmp_path / "values.yaml"])
    assert [e.type for e in explicit.errors] == ["invalid"]


def test_missing_path_is_an_error_not_an_exception(tmp_path: Path) -> None:
    loaded = load_paths([tmp_path / "nope.yaml"])
    assert loaded.documents == [] and "no such file" in loaded.errors[0].message


def test_byte_order_marks_are_tolerated(tmp_path: Path) -> None:
    for name, text in (
        ("a.json", '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j"}}'),
        ("b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: y}\n"),
    ):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    loaded = load_paths([tmp_path / "a.json", tmp_path / "b.yaml"])
    assert loaded.errors == []
    assert [d.manifest["metadata"]["name"] for d in loaded.documents] == ["j", "y"]


# YAML the fast builder hands to the safe constructor (numbers, booleans, timestamps, binary,
# merge keys, anchors, non-string keys, explicit tags) beside what it builds itself.
TRICKY = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: tricky
  labels: &labels {app: web, tier: "1"}
  annotations:
    <<: *labels
    extra: yes
data:
  ints: [1, 0x1f, 0o17, -3, 1_000]
  floats: [2.5, .inf, -.Inf, 1e3]
  flags: [yes, no, on, off, true, False, ~, null]
  dates: [2020-01-01, 2001-12-14t21:59:43.10-05:00]
  quoted: ["1", 'yes', !!str 12]
  typed: !!int "7"
  blob: !!binary aGVsbG8=
  same: *labels
  80: port
"""


def test_yaml_builds_exactly_what_the_safe_loader_builds() -> None:
    import yaml  # noqa: PLC0415 - the reference loader

    text = TRICKY + "---\n" + TRICKY
    out = parse_text(text, source="tricky.yaml")
    assert not out.errors
    assert [d.manifest for d in out.documents] == list(yaml.load_all(text, Loader=yaml.SafeLoader))
    first = out.documents[0].manifest
    assert first["data"]["same"] is first["metadata"]["labels"]  # an alias is the same object
    assert first["metadata"]["annotations"] == {"app": "web", "tier": "1", "extra": True}
    assert first["data"][80] == "port"
    assert [d.line for d in out.documents] == [1, TRICKY.count("\n") + 2]


def test_yaml_the_safe_loader_refuses_is_an_error_and_the_next_document_survives() -> None:
    unhashable = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n? [complex]\n: key\n"
    tagged = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: !custom x\n"
    out = parse_text(unhashable + "---\n" + tagged + "---\n" + TRICKY, source="bad.yaml")
    assert [e.line for e in out.errors] == [4, 10]  # where each problem is
    assert "unhashable" in out.errors[0].message and "!custom" in out.errors[1].message
    assert [d.manifest["metadata"]["name"] for d in out.documents] == ["tricky"]
