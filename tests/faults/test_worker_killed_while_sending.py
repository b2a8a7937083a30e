"""A worker SIGKILLed in the middle of a batch of reports to a slow receiver re-sends none of the
reports the receiver acknowledged.

Real processes on a private PostgreSQL and Redis (tests/faults/rig.py): gunicorn takes the
pushes, a worker scans six clusters whose webhook receiver (a thread in this test) first answers
503, so six reports wait for their retry. Then the receiver answers 200 after 1.5 s, one
`deliver_reports` run sends the batch, and the worker is SIGKILLed while the receiver holds the
fourth request. The three acknowledged reports are already `sent` in the database; a new worker
and beat send the rest once the dead worker's claim (30 s) ends: the report in flight is sent
again with the same Idempotency-Key (the receiver can drop it), the acknowledged ones never.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.tasks import DELIVER_REPORTS
from store.deliveries import CLAIM_LEASE
from store.types import utcnow
from tests.fakes.receiver import running_receiver
from tests.faults.deliveries import WEBHOOK_ENV, clusters_reporting_to, deliveries
from tests.faults.rig import FaultRig

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

BATCH = 6
KILLED_AT = 4  # the request the receiver holds when the worker is killed
SLOW_S = 1.5


def test_a_worker_killed_mid_batch_never_resends_an_acknowledged_report(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    with (
        running_receiver(status=503) as receiver,
        FaultRig.start(
            tmp_path,
            **WEBHOOK_ENV,
            K8SMON_DELIVERY_BACKOFF_SECONDS="1",
            K8SMON_DELIVERY_BACKOFF_CAP_SECONDS="1",
            K8SMON_DELIVERY_INTERVAL_SECONDS="1",
        ) as rig,
    ):
        rig.start_web()
        rig.start_worker()
        feeds = clusters_reporting_to(rig, receiver.url, BATCH, prefix="batch")
        rig.wait_until(
            lambda: (
                len(rows := deliveries(rig)) == BATCH
                and all(d.attempts == 1 and d.next_attempt_at <= utcnow() for d in rows)
            ),
            timeout=180,
            what="six reports refused once (503), each due for its retry",
        )
        refused = len(receiver.requests)

        # The batch: one delivery run (as beat sends it), to a receiver that is now slow.
        receiver.delay_s, receiver.status = SLOW_S, 200
        rig.send_task(DELIVER_REPORTS)
        rig.wait_until(
            lambda: len(receiver.requests) >= refused + KILLED_AT,
            timeout=60,
            what=f"the receiver to hold request {KILLED_AT} of the batch",
        )
        rig.kill("worker")
        acknowledged = {d.idempotency_key for d in deliveries(rig) if d.state == "sent"}
        in_flight = receiver.requests[refused + KILLED_AT - 1].key
        assert len(acknowledged) == KILLED_AT - 1, "each answer was committed at once"
        assert in_flight not in acknowledged

        rig.start_worker("worker-2")
        rig.start_beat()
        recovery_s = rig.wait_until(
            lambda: all(d.state == "sent" for d in deliveries(rig)),
            timeout=CLAIM_LEASE.total_seconds() + 90,
            what="every report to be sent after the kill",
        )
        rows = deliveries(rig, feeds)
        batch = receiver.requests[refused:]

    seen = Counter(r.key for r in batch)
    record_property("reports", BATCH)
    record_property("acknowledged_before_kill", len(acknowledged))
    record_property("acknowledged_resent", sum(seen[k] - 1 for k in acknowledged))
    record_property("in_flight_resent", seen[in_flight] - 1)
    record_property("recovery_s", round(recovery_s, 1))
    record_property("attempts", [d.attempts for d in rows])
    print(
        f"\n{BATCH} reports, worker SIGKILLed holding request {KILLED_AT}: "
        f"{len(acknowledged)} acknowledged before the kill, re-sent "
        f"{sum(seen[k] - 1 for k in acknowledged)} of them; the one in flight re-sent "
        f"{seen[in_flight] - 1}x with its key; all {BATCH} sent {recovery_s:.1f} s after the kill "
        f"(claim lease {CLAIM_LEASE.total_seconds():.0f} s); attempts {[d.attempts for d in rows]}"
    )
    assert all(seen[key] == 1 for key in acknowledged), f"an acknowledged report re-sent: {seen}"
    assert seen[in_flight] == 2, "the report in flight is sent again, with the same key"
    assert set(seen) == {d.idempotency_key for d in rows}, "every report, by its key"
    assert len(batch) == BATCH + 1
    assert all(d.state == "sent" and d.sent_at is not None for d in rows)
    assert {d.attempts for d in rows if d.idempotency_key != in_flight} == {2}
    assert [d.attempts for d in rows if d.idempotency_key == in_flight] == [3]
