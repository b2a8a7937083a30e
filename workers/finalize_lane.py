"""A thread that runs a batch's finalize steps, one at a time, while the next scan is evaluated.

A scan's finalize ends in writes (its findings, their events, the scan run) that PostgreSQL
spends about as long storing as the worker spent computing them. In a batch of scans
(`k8smon.scan_clusters`) the worker need not wait: it hands each finalize to this lane and goes
on evaluating the next cluster while the server stores the previous one's findings (the lane's
thread waits on the server without holding the GIL). At most one finalize is in the lane: the
next hand-over first waits for the previous one to commit. Whatever follows a finalize that
must run in the caller's thread (sending follow-up tasks) is handed over as `then` and run there.

Leaving the lane waits for the finalize in it, also when the caller fails: a task never returns,
and so is never acknowledged, before every finalize it started has committed or failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

log = logging.getLogger("k8smon.workers")

T = TypeVar("T")


class FinalizeLane(Generic[T]):
    """Run `work` on the lane's thread (or at once, with `background=False`), then `then` on
    its result in the caller's thread at the next hand-over or when the lane is left."""

    def __init__(self, *, background: bool) -> None:
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="k8smon-finalize")
            if background
            else None
        )
        self._pending: tuple[Future[T], Callable[[T], Any]] | None = None

    def submit(self, work: Callable[[], T], then: Callable[[T], Any]) -> None:
        self.wait()
        if self._pool is None:
            then(work())
            return
        self._pending = (self._pool.submit(work), then)

    def wait(self) -> None:
        """Wait for the finalize in the lane (its error is raised here), then run its `then`."""
        if self._pending is None:
            return
        (future, then), self._pending = self._pending, None
        then(future.result())

    def __enter__(self) -> FinalizeLane[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        problem: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if problem is None:
                self.wait()
            elif self._pending is not None:
                future, then = self._pending
                self._pending = None
                failure = future.exception()  # waits: never leave a transaction behind
                if failure is not None:
                    log.error("finalize in the lane failed too: %r", failure)
                else:
                    try:  # it committed: what follows it is still due
                        then(future.result())
                    except Exception:
                        log.exception("after a finalize in the lane")
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
