"""A webhook receiver down through every attempt: retried with capped exponential backoff for the
whole retry window, then dead-lettered (an error in the worker's log, `/metrics`, the admin API),
and delivered once, with its idempotency key, when an admin re-sends it after the receiver is
back.

Real processes on a private PostgreSQL and Redis (tests/faults/rig.py): gunicorn, a worker and
beat. The window and backoff are shortened through their documented settings (20 s window,
backoff 1 s doubling to a 4 s cap, the delivery task every second): the production defaults
are 24 h, 30 s and 1 h.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from nacl.signing import SigningKey

from reports.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from store import admin_keys
from tests.fakes.receiver import running_receiver
from tests.faults.deliveries import WEBHOOK_ENV, WEBHOOK_SECRET, clusters_reporting_to, deliveries
from tests.faults.rig import FaultRig
from tests.ingest.conftest import Signer

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

WINDOW_S = 20.0
DEAD_GAUGE = re.compile(r'^k8smon_deliveries\{state="dead"\} (\S+)$', re.MULTILINE)


def dead_gauge(rig: FaultRig) -> float:
    found = DEAD_GAUGE.search(requests.get(rig.base_url + "/metrics", timeout=10).text)
    assert found, "k8smon_deliveries is not in /metrics"
    return float(found[1])


def admin_signer(rig: FaultRig) -> Signer:
    key = SigningKey.generate()
    with rig.session() as session:
        admin_keys.create_admin_key(
            session, "ops", role="admin", key_id="ops-key", public_key=bytes(key.verify_key)
        )
    return Signer(rig.base_url, key, "ops-key")


def test_a_receiver_down_is_retried_then_dead_lettered_and_resent_once_it_is_back(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    with (
        running_receiver() as receiver,
        FaultRig.start(
            tmp_path,
            **WEBHOOK_ENV,
            K8SMON_DELIVERY_RETRY_HOURS=str(WINDOW_S / 3600),
            K8SMON_DELIVERY_BACKOFF_SECONDS="1",
            K8SMON_DELIVERY_BACKOFF_CAP_SECONDS="4",
            K8SMON_DELIVERY_INTERVAL_SECONDS="1",
        ) as rig,
    ):
        receiver.stop()  # down: its port refuses connections
        rig.start_web()
        rig.start_worker()
        rig.start_beat()
        [feed] = clusters_reporting_to(rig, receiver.url, 1, prefix="down")
        rig.wait_until(lambda: deliveries(rig), timeout=120, what="the scan's delivery")
        dead_s = rig.wait_until(
            lambda: [d.state for d in deliveries(rig)] == ["dead"],
            timeout=WINDOW_S + 90,
            what="the delivery to be dead-lettered",
        )
        [dead] = deliveries(rig)
        gauge = dead_gauge(rig)
        admin = admin_signer(rig)
        listed = admin.json("GET", "/v1/admin/deliveries?state=dead").json()["deliveries"]
        worker_log = rig.logs("worker")

        receiver.start()  # back, on the same port
        resent = admin.json("POST", f"/v1/admin/deliveries/{dead.id}/resend")
        assert resent.status_code == 202, resent.text
        delivered_s = rig.wait_until(
            lambda: [d.state for d in deliveries(rig)] == ["sent"],
            timeout=60,
            what="the re-sent delivery to be acknowledged",
        )
        gauge_after = dead_gauge(rig)
        [sent] = deliveries(rig)
        time.sleep(3)  # three more delivery runs: nothing is sent again
        requests_seen = list(receiver.requests)
    spent_s = (dead.dead_at - dead.created_at).total_seconds() if dead.dead_at else 0.0

    record_property("attempts_before_dead_letter", dead.attempts)
    record_property("retry_window_s", WINDOW_S)
    record_property("dead_lettered_after_s", round(spent_s, 1))
    record_property("resend_to_delivered_s", round(delivered_s, 1))
    print(
        f"\nreceiver down: {dead.attempts} attempts over {spent_s:.1f} s (window {WINDOW_S:.0f} s, "
        f"backoff 1 s doubling to 4 s), dead-lettered {dead_s:.1f} s into the wait; "
        f"/metrics dead={gauge:.0f}; re-sent by an admin, delivered in {delivered_s:.1f} s, "
        f"{len(requests_seen)} request(s) received"
    )
    assert dead.state == "dead" and spent_s >= WINDOW_S, "retried for the whole window"
    # 1, 2, 4, 4, … s apart for 20 s: at least six attempts; the beat runs every second.
    assert dead.attempts >= 6, dead.attempts
    assert "refused" in (dead.last_error or "").lower()
    assert gauge == 1.0 and gauge_after == 0.0
    [row] = listed
    assert row["id"] == dead.id and row["cluster_id"] == feed.cluster_id and row["last_error"]
    assert re.search(rf"ERROR.*delivery {dead.id} .*dead-lettered after", worker_log), worker_log
    assert sent.attempts == dead.attempts + 1 and sent.idempotency_key == dead.idempotency_key
    [request] = requests_seen
    assert request.key == dead.idempotency_key
    assert request.json()["delivery_id"] == dead.idempotency_key
    assert verify(
        request.body,
        secret=WEBHOOK_SECRET,
        timestamp=request.headers[TIMESTAMP_HEADER],
        signature=request.headers[SIGNATURE_HEADER],
    )
