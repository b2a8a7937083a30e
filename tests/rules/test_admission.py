"""Per-namespace Pod Security Admission report: each namespace judged by its own labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rules import ClusterContext
from rules.admission import evaluate, namespace_reports, strictest_level
from rules.psa import Level
from tests.support.factories import make_cluster

K8SMON = Path(sys.executable).with_name("k8smon")
RESTRICTED_SPEC: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "image": "registry.example/c:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}


def _namespace(name: str, **labels: str) -> dict[str, Any]:
    full = {f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": full}}


def _deployment(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def _with_sysctl(name: str) -> dict[str, Any]:
    spec = json.loads(json.dumps(RESTRICTED_SPEC))
    spec["securityContext"]["sysctls"] = [{"name": name, "value": "1"}]
    return spec


def _cluster() -> list[dict[str, Any]]:
    privileged = {
        "containers": [{"name": "c", "image": "i:1", "securityContext": {"privileged": True}}]
    }
    return [
        _namespace("legacy", enforce="baseline", warn="restricted", audit="restricted"),
        _namespace("pinned", enforce="baseline", enforce_version="v1.31"),
        _namespace("ready"),
        _namespace("typo", enforce="restricted-ish"),
        _deployment("old", "legacy", privileged),
        _deployment("tidy", "legacy", RESTRICTED_SPEC),
        _deployment("tuned", "pinned", _with_sysctl("net.ipv4.tcp_rmem")),
        _deployment("tidy", "ready", RESTRICTED_SPEC),
        _deployment("tidy", "typo", RESTRICTED_SPEC),
        _deployment("loose", "unlabelled", {"containers": [{"name": "c", "image": "i:1"}]}),
    ]


def test_each_namespace_is_judged_by_its_own_labels() -> None:
    reports = {r.namespace: r for r in namespace_reports(ClusterContext(_cluster()))}
    assert sorted(reports) == ["legacy", "pinned", "ready", "typo", "unlabelled"]

    legacy = reports["legacy"]
    assert [(str(v.ref), v.controls) for v in legacy.refused] == [
        ("Deployment legacy/old", ("baseline/privileged-containers",))
    ]
    assert {str(v.ref) for v in legacy.warned} == {"Deployment legacy/old"}
    assert {str(v.ref) for v in legacy.audited} == {"Deployment legacy/old"}
    assert legacy.satisfies is Level.PRIVILEGED and legacy.workloads == 2

    # Pinned to v1.31: tcp_rmem joined the safe sysctls only in v1.32.
    pinned = reports["pinned"]
    assert [v.controls for v in pinned.refused] == [("baseline/sysctls",)]
    assert pinned.satisfies is Level.PRIVILEGED

    assert reports["ready"].refused == [] and reports["ready"].satisfies is Level.RESTRICTED
    assert reports["ready"].modes["enforce"].labelled is False
    # A level PSA does not know is treated as restricted, and said so.
    typo = reports["typo"].modes["enforce"]
    assert typo.level is Level.RESTRICTED and "restricted-ish" in typo.label_error
    assert reports["unlabelled"].satisfies is Level.BASELINE


def test_cluster_release_caps_every_namespace() -> None:
    reports = {
        r.namespace: r
        for r in namespace_reports(ClusterContext(_cluster()), kubernetes_version=(1, 30))
    }
    assert reports["pinned"].modes["enforce"].version == (1, 30)
    assert reports["ready"].judged_at == (1, 30)


def test_evaluate_matches_levels_and_versions() -> None:
    tuned = _deployment("tuned", "x", _with_sysctl("net.ipv4.tcp_rmem"))
    assert evaluate(tuned, Level.BASELINE, (1, 31)) == ["baseline/sysctls"]
    assert evaluate(tuned, Level.BASELINE, (1, 32)) == []
    assert evaluate(tuned, Level.RESTRICTED) == []
    assert evaluate(tuned, Level.PRIVILEGED, (1, 0)) == []
    assert strictest_level(tuned, (1, 31)) is Level.PRIVILEGED
    assert strictest_level(tuned) is Level.RESTRICTED


def test_k8smon_namespaces_prints_the_report(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": _cluster()}))
    run = [str(K8SMON), "namespaces", str(path)]
    done = subprocess.run([*run, "--format", "json"], capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    by_name = {n["namespace"]: n for n in data["namespaces"]}
    assert by_name["legacy"]["refused"][0]["resource"]["name"] == "old"
    assert by_name["ready"]["satisfies"] == "restricted"
    assert by_name["pinned"]["modes"]["enforce"]["version"] == "v1.31"
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "refused: Deployment legacy/old (baseline/privileged-containers)" in table
    older = subprocess.run(
        [*run, "--format", "json", "--kubernetes-version", "1.29"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(older.stdout)["kubernetes_version"] == "v1.29"
    bad = subprocess.run(
        [*run, "--kubernetes-version", "x"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2


def test_k8smon_namespaces_reports_on_a_stored_cluster(
    pg_engine: Any, postgres_database: Any, tmp_path: Path
) -> None:
    """`--cluster` reads the server's database: live objects, judged at the agent's release."""
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from store.snapshots import apply_pending, stage_snapshot  # noqa: PLC0415
    from store.telemetry import record_telemetry  # noqa: PLC0415
    from tests.support.manifests import full_envelope  # noqa: PLC0415

    objects = [
        {**o, "metadata": {**o["metadata"], "uid": f"uid-{i}"}} for i, o in enumerate(_cluster())
    ]
    with Session(pg_engine) as session:
        make_cluster(session, "psa-report")
        stage_snapshot(session, "psa-report", envelope=full_envelope(objects))
        apply_pending(session, "psa-report")
        record_telemetry(
            session, "psa-report", payload={"agent_version": "1", "kubernetes_version": "v1.30.2"}
        )
        session.commit()
    env = {
        **os.environ,
        "DATABASE_URL": postgres_database.url,
        "K8SMON_ENV": "embedded",
        "K8SMON_INSTANCE_PATH": str(tmp_path),
    }
    done = subprocess.run(
        [str(K8SMON), "namespaces", "--cluster", "psa-report", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    by_name = {n["namespace"]: n for n in data["namespaces"]}
    assert by_name["legacy"]["refused"][0]["resource"]["name"] == "old"
    assert by_name["ready"]["satisfies_at"] == "v1.30"  # the agent's release
    missing = subprocess.run(
        [str(K8SMON), "namespaces", "--cluster", "nope"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert missing.returncode == 2 and "no cluster" in missing.stderr
    both = subprocess.run(
        [str(K8SMON), "namespaces"], capture_output=True, text=True, check=False, timeout=120
    )
    assert both.returncode == 2
