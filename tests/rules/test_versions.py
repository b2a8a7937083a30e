"""Pod Security policy versions: `--kubernetes-version`, namespace `enforce-version` pins, and
the version parsing every caller shares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rules import Engine, psa

K8SMON = Path(sys.executable).with_name("k8smon")


def _pod(namespace: str, sysctl: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{namespace}", "namespace": namespace},
        "spec": {
            "securityContext": {"sysctls": [{"name": sysctl, "value": "1"}]},
            "containers": [{"name": "c", "image": "registry.example/c:1"}],
        },
    }


def _namespace(name: str, version: str | None) -> dict[str, Any]:
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    if version is not None:
        labels["pod-security.kubernetes.io/enforce-version"] = version
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.28", (1, 28)),
        ("v1.28", (1, 28)),
        ("v1.29.3-eks-adc7111", (1, 29)),
        ("1.99", psa.LATEST),
        ("latest", None),
        ("", None),
        (None, None),
    ],
)
def test_versions_parse_like_psa_labels_and_git_versions(text: Any, expected: Any) -> None:
    assert psa.parse_version(text) == expected


@pytest.mark.parametrize("text", ["banana", "2.1", "1", "v1.x"])
def test_malformed_versions_are_refused(text: str) -> None:
    with pytest.raises(psa.VersionError):
        psa.parse_version(text)


def test_the_history_helper_picks_the_newest_entry_not_after_the_version() -> None:
    assert "net.ipv4.tcp_rmem" not in psa.at(psa.SAFE_SYSCTLS, (1, 31))
    assert "net.ipv4.tcp_rmem" in psa.at(psa.SAFE_SYSCTLS, (1, 32))
    assert "net.ipv4.tcp_notsent_lowat" in psa.at(psa.SAFE_SYSCTLS, psa.LATEST)
    assert psa.at(psa.SAFE_SYSCTLS, (1, 0)) < psa.at(psa.SAFE_SYSCTLS, (1, 27))


def test_a_namespace_pinned_to_an_older_policy_is_judged_by_it() -> None:
    objects = [
        _namespace("pinned", "v1.31"),
        _namespace("unpinned", None),
        _namespace("garbage-pin", "not-a-version"),
        _pod("pinned", "net.ipv4.tcp_rmem"),
        _pod("unpinned", "net.ipv4.tcp_rmem"),
        _pod("garbage-pin", "net.ipv4.tcp_rmem"),
        _pod("absent", "net.ipv4.tcp_rmem"),
    ]
    outcome = Engine.from_config(None).scan(objects)
    flagged = {r.resource.namespace for r in outcome.results if r.rule_id == "KM-120"}
    assert flagged == {"pinned"}
    # A cluster on 1.30 cannot apply a newer policy than its own, whatever the pin.
    older = Engine.from_config(None).scan(objects, kubernetes_version=(1, 30))
    flagged = {r.resource.namespace for r in older.results if r.rule_id == "KM-120"}
    assert flagged == {"pinned", "unpinned", "garbage-pin", "absent"}


def _scan(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [str(K8SMON), "scan", str(path), "--format", "json", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return done.returncode, (json.loads(done.stdout) if done.stdout.startswith("{") else {})


def test_scan_kubernetes_version_judges_the_input_as_that_release(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.json"
    pod = _pod("shop", "net.ipv4.tcp_rmem")
    pod["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"host": "10.0.0.1", "path": "/", "port": 80}
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1beta1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {},
    }
    manifest.write_text(json.dumps([pod, ingress]))
    rules_at: dict[str, set[str]] = {}
    for version in ("1.21", "1.33", "latest"):
        code, report = _scan(manifest, "--kubernetes-version", version)
        assert code == 0, report
        rules_at[version] = {f["rule_id"] for f in report["findings"]}
    _, default = _scan(manifest)
    assert {f["rule_id"] for f in default["findings"]} == rules_at["latest"]
    assert "KM-120" in rules_at["1.21"] and "KM-120" not in rules_at["1.33"]  # tcp_rmem: 1.32
    assert "KM-121" not in rules_at["1.33"] and "KM-121" in rules_at["latest"]  # host probes
    assert "KM-110" not in rules_at["1.21"]  # restricted capabilities: 1.22
    assert "KM-608" in rules_at["latest"] and "KM-608" not in rules_at["1.21"]
    assert "KM-609" in rules_at["1.21"]


def test_scan_refuses_a_malformed_kubernetes_version(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(_pod("shop", "kernel.shm_rmid_forced")))
    done = subprocess.run(
        [str(K8SMON), "scan", str(manifest), "--kubernetes-version", "one-point-two"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--kubernetes-version" in done.stderr
