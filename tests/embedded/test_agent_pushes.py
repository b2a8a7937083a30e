"""Embedded mode under a real agent: every push is processed at once, none is lost to
`database is locked` while telemetry pings arrive during processing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store.db import make_engine
from store.models import Snapshot, TelemetryPing
from tests.embedded.conftest import Served, run_agent_once
from tests.fakes.kube_api import KubeApiEmulator
from tests.fakes.kube_objects import config_map, pod
from tests.workers.celery_rig import wait_for

ROUNDS = 10
OBJECTS = 150


def _states(served: Served, cluster_id: str) -> list[str]:
    engine = make_engine(served.database_url)
    try:
        with engine.connect() as connection:
            return list(
                connection.scalars(
                    select(Snapshot.state)
                    .where(Snapshot.cluster_id == cluster_id)
                    .order_by(Snapshot.id)
                )
            )
    finally:
        engine.dispose()


@pytest.mark.slow
def test_ten_agent_pushes_and_pings_in_a_row_are_all_processed(
    served: Served, emulator: KubeApiEmulator
) -> None:
    key_file = served.register("shop-prod")
    for round_ in range(ROUNDS):
        # Every round changes the cluster, so every snapshot has real work to apply (and scan).
        # Enough of it that processing is still running when the agent's ping arrives.
        emulator.cluster.add_all(
            [config_map(f"round-{round_}-{i}", namespace="shop") for i in range(OBJECTS)]
            + [
                pod(f"job-{round_}-{i}", namespace="shop", image=f"shop/job:{round_}")
                for i in range(OBJECTS)
            ]
        )
        done = run_agent_once(served, emulator, cluster_id="shop-prod", key_file=key_file)
        assert done.returncode == 0, done.stdout + done.stderr
        expected = round_ + 1

        def processed(expected: int = expected) -> list[str] | None:
            states = _states(served, "shop-prod")
            return states if len(states) == expected and "pending" not in states else None

        states = wait_for(processed, timeout=60, what=f"snapshot {expected} to be processed")
        assert states == ["processed"] * expected, states
    engine = make_engine(served.database_url)
    with engine.connect() as connection:
        pings = connection.scalar(
            select(TelemetryPing.id).where(TelemetryPing.cluster_id == "shop-prod").limit(1)
        )
    engine.dispose()
    assert pings is not None
    shown = served.k8smon("telemetry")
    assert "shop-prod" in shown.stdout
    log = served.logs()
    assert "database is locked" not in log, log[-5000:]
    assert "task_failed" not in log, log[-5000:]
