"""Ingest down (agent side): the real agent process keeps the telemetry it could not send
(bounded, K8SMON_AGENT_TELEMETRY_BUFFER) and sends it when ingest returns; its snapshot
cadence recovers at once.

The agent (`python -m agent`) reads an emulated cluster that changes every second, so every
push cycle sends a delta; the server is the rig's gunicorn on a private PostgreSQL and Redis,
stopped (SIGTERM, as a rollout or a crash-loop would) and started again on the same port.

Time is scaled by 1/20 through the agent's documented settings: a push every 15 s, a ping every
3 s and backoff capped at 15 s (defaults 300 s, 60 s, 300 s), so a 30 s outage stands for the
issue's 10 minutes (ten pings, two push cycles). The buffer keeps its default (60 pings: an
hour at the default ping interval).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select

from store.models import Snapshot, TelemetryPing
from tests.fakes.kube_api import KubeApiEmulator
from tests.fakes.kube_objects import small_cluster
from tests.faults.rig import FaultRig
from tests.support.manifests import config_map

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SCALE = 20
PUSH_S = 300 / SCALE
PING_S = 60 / SCALE
MAX_BACKOFF_S = 300 / SCALE
OUTAGE_S = 600 / SCALE
CADENCE_CHECKED = 3  # snapshots after recovery whose spacing is checked


def stored_pings(rig: FaultRig, cluster_id: str) -> list[tuple[int, datetime]]:
    """(seq, when the agent made it) of every ping the server stored for the cluster."""
    with rig.session() as session:
        details = session.scalars(
            select(TelemetryPing.details).where(TelemetryPing.cluster_id == cluster_id)
        ).all()
    return [
        (
            int(d["details"]["seq"]),
            datetime.strptime(d["sent_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        )
        for d in details
    ]


def snapshot_times(rig: FaultRig, cluster_id: str) -> list[datetime]:
    with rig.session() as session:
        return list(
            session.scalars(
                select(Snapshot.received_at)
                .where(Snapshot.cluster_id == cluster_id)
                .order_by(Snapshot.id)
            )
        )


def test_ingest_down_the_agent_buffers_telemetry_and_keeps_its_cadence(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    cluster = small_cluster()
    churning = threading.Event()

    def churn() -> None:
        n = 0
        while not churning.wait(1.0):
            n += 1
            cluster.add(config_map(f"churn-{n}", namespace="default"))

    with (
        FaultRig.start(tmp_path, K8SMON_SCAN_ON_PUSH="false") as rig,
        KubeApiEmulator(cluster) as api,
    ):
        rig.start_web()
        feed = rig.register_clusters(1, objects=0, prefix="agent")[0]
        changer = threading.Thread(target=churn, daemon=True)
        changer.start()
        try:
            rig.start_agent(
                feed,
                kubeconfig=api.write_kubeconfig(tmp_path / "kubeconfig"),
                K8SMON_AGENT_PUSH_INTERVAL=str(PUSH_S),
                K8SMON_AGENT_PING_INTERVAL=str(PING_S),
                K8SMON_AGENT_MAX_BACKOFF=str(MAX_BACKOFF_S),
            )
            rig.wait_until(
                lambda: len(snapshot_times(rig, feed.cluster_id)) >= 2,
                timeout=4 * PUSH_S,
                what="two pushes before the outage",
            )
            rig.stop("web")
            down = datetime.now(UTC)
            time.sleep(OUTAGE_S)
            rig.start_web()
            back = datetime.now(UTC)
            made_while_down = OUTAGE_S // PING_S

            def outage_pings_stored() -> bool:
                return (
                    sum(1 for _, at in stored_pings(rig, feed.cluster_id) if down <= at <= back)
                    >= made_while_down - 2
                )

            telemetry_s = rig.wait_until(
                outage_pings_stored,
                timeout=4 * PUSH_S,
                what="the telemetry made during the outage to arrive",
            )
            snapshot_s = rig.wait_until(
                lambda: any(t > back for t in snapshot_times(rig, feed.cluster_id)),
                timeout=4 * PUSH_S,
                what="the first push after the outage",
            )
            rig.wait_until(
                lambda: (
                    sum(t > back for t in snapshot_times(rig, feed.cluster_id)) >= CADENCE_CHECKED
                ),
                timeout=(CADENCE_CHECKED + 2) * PUSH_S,
                what=f"{CADENCE_CHECKED} pushes after the outage",
            )
            pings = stored_pings(rig, feed.cluster_id)
            after = [t for t in snapshot_times(rig, feed.cluster_id) if t > back]
            agent_log = rig.logs("agent")
        finally:
            churning.set()
            changer.join(timeout=5)
    gaps = [(b - a).total_seconds() for a, b in pairwise(after)]
    record_property("telemetry_recovery_s", round(telemetry_s, 1))
    record_property("snapshot_recovery_s", round(snapshot_s, 1))
    record_property("push_gaps_after_s", [round(g, 1) for g in gaps])
    print(
        f"ingest down {OUTAGE_S:.0f} s (10 min at 1/{SCALE} scale): the telemetry made meanwhile "
        f"arrived {telemetry_s:.1f} s after ingest returned, the first push {snapshot_s:.1f} s "
        f"after; push spacing then {[round(g, 1) for g in gaps]} s (interval {PUSH_S:.0f} s)"
    )
    seqs = sorted({seq for seq, _ in pings})
    # Every ping the agent made reached the server: none lost to the outage.
    assert seqs == list(range(1, seqs[-1] + 1)), (seqs, agent_log[-3000:])
    assert sum(1 for _, at in pings if down <= at <= back) >= made_while_down - 2
    assert '"telemetry.dropped"' not in agent_log  # the buffer was never full
    # The cadence recovers at once: the first push within one interval (plus the backoff
    # the outage had reached), then at least one push per interval. (A retry that succeeds
    # late in its cycle may be followed at once by the next cycle, which stays on its grid.)
    assert snapshot_s <= PUSH_S + MAX_BACKOFF_S
    assert max(gaps) <= 1.5 * PUSH_S, gaps
