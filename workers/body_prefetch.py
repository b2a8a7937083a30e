"""A thread that reads the next scan's bodies while this one is evaluated (a batch's full scans).

A full scan reads, decodes and views every live body of its cluster (`scanning._live_views`).
PostgreSQL spends about a tenth of a one-worker scan producing those rows, and the worker waited
for it. In a batch (`jobs.scan_batch`) the next cluster is known: this thread reads its bodies,
on a session of its own, while the worker evaluates the current one, and the next scan takes
them (`take`); the first full scan's are read while the batch's other scans are planned. A
body never changes under its content hash, so bodies read in another transaction are still
right: the step pairs them with the live rows it reads itself and reads any body whose object
changed meanwhile (`scanning._live_views`).

At most one read is ahead. One that fails or is not taken is dropped: the scan reads its bodies
itself. Leaving waits for the read in flight, so that no transaction is left behind.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from store.db import unit_of_work
from store.manifests import PrefetchedBodies, live_bodies_by_id

log = logging.getLogger("k8smon.workers")


def _read(sessions: sessionmaker[Session], cluster_id: str) -> PrefetchedBodies:
    with unit_of_work(sessions) as session:
        return live_bodies_by_id(session, cluster_id)


class BodyPrefetch:
    """Read one cluster's live bodies ahead (`ahead`) on a thread of its own, for the scan
    that `take`s them; with `background=False` (SQLite, shared test sessions) nothing is read
    ahead and `take` gives None."""

    def __init__(self, sessions: sessionmaker[Session], *, background: bool) -> None:
        self._sessions = sessions
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="k8smon-prefetch")
            if background
            else None
        )
        self._pending: tuple[str, Future[PrefetchedBodies]] | None = None

    def ahead(self, cluster_id: str) -> None:
        """Start reading the cluster's live bodies (a read not taken is dropped)."""
        if self._pool is None:
            return
        self._drop()
        self._pending = (cluster_id, self._pool.submit(_read, self._sessions, cluster_id))

    def take(self, cluster_id: str) -> PrefetchedBodies | None:
        """The cluster's bodies read ahead, waiting for the read (None: none was started for
        it, or it failed)."""
        if self._pending is None or self._pending[0] != cluster_id:
            return None
        (_cluster, future), self._pending = self._pending, None
        try:
            return future.result()
        except Exception:
            log.warning("cluster %s: its bodies were not read ahead", cluster_id, exc_info=True)
            return None

    def _drop(self) -> None:
        if self._pending is not None:
            _cluster, future = self._pending
            self._pending = None
            future.cancel()

    def __enter__(self) -> BodyPrefetch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        problem: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a read in flight ends (and closes its session)
