"""Image drift (KM-621) and advisories (KM-622) from the real agent's push to `k8smon serve`
(embedded: SQLite, tasks in process): the push's own scan names them, a label-selector
exemption made with `k8smon exemptions add --labels` covers them, and the next push with the
image updated resolves them — no fleet scan in between."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.embedded.conftest import Served, run_agent_once
from tests.fakes.kube_api import KubeApiEmulator
from tests.fakes.kube_objects import deployment, small_cluster
from tests.workers.celery_rig import wait_for

APP = "registry.example/shop/log4j-app"
ADVISORY = """
advisories:
  - id: TEST-EMBEDDED-1
    severity: critical
    summary: test advisory
    url: https://advisories.example/TEST-EMBEDDED-1
    affected:
      - repository: "*/log4j-app"
        introduced: "2.0.0"
        fixed: "2.15.0"
"""
FLEET_RULES = {"KM-621", "KM-622"}


def emulated(*workloads: tuple[str, str, dict[str, str]]) -> KubeApiEmulator:
    """The small cluster plus Deployments (name, image tag, extra labels) of the app."""
    cluster = small_cluster()
    for name, tag, labels in workloads:
        body = deployment(name, namespace="shop", image=f"{APP}:{tag}")
        body["metadata"]["labels"].update(labels)
        cluster.add(body)
    return KubeApiEmulator(cluster)


@pytest.fixture
def ahead() -> Iterator[KubeApiEmulator]:
    with emulated(("app", "2.17.1", {})) as api:
        yield api


@pytest.fixture
def behind() -> Iterator[KubeApiEmulator]:
    with emulated(("app", "2.14.1", {}), ("legacy", "2.14.1", {"team": "legacy"})) as api:
        yield api


def fleet_findings(served: Served, cluster_id: str) -> list[dict[str, Any]]:
    shown = served.k8smon(
        "findings",
        "--cluster",
        cluster_id,
        "--status",
        "new,open,exempted,resolved",
        "--format",
        "json",
    )
    found = json.loads(shown.stdout or "[]") if shown.stdout.strip() else []
    return [f for f in found if f["rule_id"] in FLEET_RULES]


def summary(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((f["rule_id"], f["resource"]["name"], f["status"]) for f in found)


@pytest.mark.slow
def test_a_push_scan_names_drift_and_advisories_and_resolves_them_after_the_update(
    served: Served, ahead: KubeApiEmulator, behind: KubeApiEmulator
) -> None:
    advisories = served.tmp / "advisories.yaml"
    advisories.write_text(ADVISORY, encoding="utf-8")
    served.k8smon("advisories", "load", str(advisories))
    served.k8smon(
        "exemptions",
        "add",
        "--rule",
        "KM-621",
        "--rule",
        "KM-622",
        "--labels",
        "team=legacy",
        "--reason",
        "legacy app, replaced next quarter",
        "--expires",
        "30d",
    )
    keys = {cluster_id: served.register(cluster_id) for cluster_id in ("ahead", "behind")}
    done = run_agent_once(served, ahead, cluster_id="ahead", key_file=keys["ahead"])
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(
        lambda: served.k8smon("scans", "--cluster", "ahead", "--format", "json").stdout.count(
            '"push"'
        ),
        timeout=60,
        what="the scan of ahead's push",
    )
    assert fleet_findings(served, "ahead") == []

    done = run_agent_once(served, behind, cluster_id="behind", key_file=keys["behind"])
    assert done.returncode == 0, done.stdout + done.stderr
    expected = [
        ("KM-621", "app", "new"),
        ("KM-621", "legacy", "exempted"),
        ("KM-622", "app", "new"),
        ("KM-622", "legacy", "exempted"),
    ]
    wait_for(
        lambda: summary(fleet_findings(served, "behind")) == expected,
        timeout=60,
        what="behind's drift and advisory findings",
    )
    found = {(f["rule_id"], f["resource"]["name"]): f for f in fleet_findings(served, "behind")}
    assert found["KM-622", "app"]["severity"] == "critical"
    assert "TEST-EMBEDDED-1" in found["KM-622", "app"]["message"]
    assert "2.17.1, the newest version" in found["KM-621", "app"]["message"]
    scans = json.loads(served.k8smon("scans", "--cluster", "behind", "--format", "json").stdout)
    assert [s["trigger"] for s in scans] == ["push"]

    # The image is updated in the cluster: the next push's scan resolves both findings.
    behind.cluster.edit(
        lambda o: o.get("kind") == "Deployment" and o["metadata"]["name"] == "app",
        lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image=f"{APP}:2.17.1"),
    )
    done = run_agent_once(served, behind, cluster_id="behind", key_file=keys["behind"])
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(
        lambda: (
            summary(fleet_findings(served, "behind"))
            == [
                ("KM-621", "app", "resolved"),
                ("KM-621", "legacy", "exempted"),
                ("KM-622", "app", "resolved"),
                ("KM-622", "legacy", "exempted"),
            ]
        ),
        timeout=60,
        what="behind's findings resolved after the update",
    )
    scans = json.loads(served.k8smon("scans", "--cluster", "behind", "--format", "json").stdout)
    assert [s["trigger"] for s in scans] == ["push", "push"]

    # The resource's timeline (admin API, SQLite): the advisory finding opened, then resolved
    # by the change of image.
    timeline = served.k8smon("timeline", "behind", "Deployment/shop/app", "--diff").stdout
    assert "finding_opened" in timeline and "finding_resolved" in timeline
    assert "KM-622" in timeline and f"{APP}:2.17.1" in timeline
    # The cluster's release from the agent's telemetry (v1.29, past its end of support):
    # KM-619 from a rescan, which judges the cluster as that release.
    served.k8smon("rescan", "behind", "--wait", "--timeout", "60s")
    eol = served.k8smon(
        "findings", "--cluster", "behind", "--rule", "KM-619", "--format", "json"
    ).stdout
    assert "Kubernetes 1.29" in eol
