"""`python -m agent push --from-dir DIR`: manifests from files, pushed once as a full snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.__main__ import main
from tests.agent.receiver import Receiver, Reply

MULTI_DOC = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  resourceVersion: "99"
spec:
  template:
    spec:
      containers: [{name: main, image: "shop/web:1.4"}]
---
# an empty document is fine
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
data: {password: aHVudGVyMg==}
"""

LIST_DOC = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "shop"}},
    ],
}


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    (root / "nested").mkdir(parents=True)
    (root / "app.yaml").write_text(MULTI_DOC, encoding="utf-8")
    (root / "nested" / "list.json").write_text(json.dumps(LIST_DOC), encoding="utf-8")
    (root / "broken.yml").write_text("kind: [unclosed\n", encoding="utf-8")
    (root / "noname.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n", encoding="utf-8")
    (root / "README.md").write_text("not a manifest", encoding="utf-8")
    return root


def test_push_from_dir(
    manifests: Path, receiver: Receiver, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("K8SMON_AGENT_SERVER_URL", raising=False)
    code = main(
        [
            "push",
            "--from-dir",
            str(manifests),
            "--server",
            receiver.url,
            "--cluster-id",
            "ci-pipeline",
            "--key-file",
            str(key_file),
            "--key-id",
            "ci-1",
        ]
    )
    assert code == 0
    [push] = receiver.snapshots()
    assert push.verdict == "verified"
    assert push.path == "/v1/clusters/ci-pipeline/snapshots"
    document = push.document
    assert document["type"] == "full"
    names = sorted((o["kind"], o["metadata"]["name"]) for o in document["objects"])
    assert names == [("ConfigMap", "a"), ("ConfigMap", "b"), ("Deployment", "web")]
    web = next(o for o in document["objects"] if o["kind"] == "Deployment")
    assert "resourceVersion" not in web["metadata"]
    assert 'keyid="ci-1"' in push.headers["Signature-Input"]


def test_push_from_dir_reports_a_refusal(
    manifests: Path, receiver: Receiver, key_file: Path
) -> None:
    receiver.default = Reply(403, body={"detail": "cluster disabled"})
    code = main(
        [
            "push",
            "--from-dir",
            str(manifests),
            "--server",
            receiver.url,
            "--cluster-id",
            "ci",
            "--key-file",
            str(key_file),
        ]
    )
    assert code == 1
    assert len(receiver.snapshots()) == 1
