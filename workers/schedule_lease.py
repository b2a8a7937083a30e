"""One run per schedule entry per interval whatever the number of beat processes: Redis leases.

Two `celery beat` processes (a common misdeployment) would each send every entry. Before a
beat sends an entry it takes the entry's lease: `SET <prefix>k8smon:beat-lease:<entry> NX PX`,
held for `beat_schedule.schedule.lease_seconds(interval)`. A beat that finds the lease taken
skips the entry and logs which process holds it. The embedded mode runs its schedule on threads
of its one process, so it is single-beat by construction and takes no lease.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from beat_schedule.schedule import lease_seconds

KEY = "k8smon:beat-lease:"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ScheduleLeases:
    """The leases of one broker namespace (the Redis key prefix isolates runs sharing Redis)."""

    client: redis.Redis
    prefix: str = ""
    holder: str = field(default_factory=this_process)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "") -> ScheduleLeases:
        return cls(client=redis.Redis.from_url(url), prefix=prefix)

    def key(self, entry: str) -> str:
        return f"{self.prefix}{KEY}{entry}"

    def claim(self, entry: str, *, interval_s: float) -> bool:
        """Take the entry's lease for this interval; False: another beat holds it."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        taken = self.client.set(
            self.key(entry),
            f"{self.holder} at {stamp}",
            nx=True,
            px=max(1, int(lease_seconds(interval_s) * 1000)),
        )
        return bool(taken)

    def holder_of(self, entry: str) -> str:
        """Who holds the entry's lease, for the log line of a skipped send."""
        value = self.client.get(self.key(entry))
        return value.decode(errors="replace") if isinstance(value, bytes) else "nobody (expired)"
