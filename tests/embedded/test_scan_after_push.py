"""The newcomer's path: register, let the real agent push to `k8smon serve`, run
`k8smon findings` — and see findings, with no rescan and no waiting for the fleet scan."""

from __future__ import annotations

import json

import pytest

from tests.embedded.conftest import Served, run_agent_once
from tests.fakes.kube_api import KubeApiEmulator
from tests.workers.celery_rig import wait_for


@pytest.mark.slow
def test_a_push_leads_to_findings(served: Served, emulator: KubeApiEmulator) -> None:
    key_file = served.register("first-push")
    before = served.k8smon("findings", "--cluster", "first-push")
    assert "no scan has run yet for cluster first-push" in before.stderr

    done = run_agent_once(served, emulator, cluster_id="first-push", key_file=key_file)
    assert done.returncode == 0, done.stdout + done.stderr

    def findings() -> list[dict]:
        shown = served.k8smon("findings", "--cluster", "first-push", "--format", "json")
        return json.loads(shown.stdout or "[]") if shown.stdout.strip() else []

    found = wait_for(findings, timeout=60, what="findings of the pushed cluster")
    assert {f["cluster_id"] for f in found} == {"first-push"}
    assert {f["status"] for f in found} == {"new"}
    table = served.k8smon("findings", "--cluster", "first-push")
    assert found[0]["rule_id"] in table.stdout
    scans = served.k8smon("scans", "--cluster", "first-push", "--format", "json")
    assert [s["trigger"] for s in json.loads(scans.stdout)] == ["push"]
