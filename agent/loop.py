"""The agent's main loop: collect, push full or delta snapshots, ping telemetry, stop cleanly.

State kept between cycles is small: the last acknowledged (key → content hash) map and digest,
the last collection's statistics, the last push result and a bounded buffer of unsent telemetry
pings. A push that cannot be delivered before the next one is due is dropped; the next cycle
builds a fresh one against the last acknowledged state, so nothing queues up without limit.
Cycles start on a fixed cadence (every push interval from the previous start), and pings fall
due while a push waits between retries, so an unreachable server slips neither.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from agent import __version__
from agent.backoff import Backoff, retry
from agent.collect import CollectionFailed, CollectOptions, collect
from agent.config import AgentConfig
from agent.kube import KubeApi
from agent.logs import get_logger, log_event
from agent.snapshot import AckedState, PushPlan, delta_plan, encode, encode_json, full_plan
from agent.telemetry import CollectionStats, PingBuffer, envelope
from agent.transport import Outcome

HTTP_UNAUTHORIZED = 401
HTTP_CONFLICT = 409
# A delta the server found invalid: the next cycle sends a full snapshot instead.
REFUSED_DELTA = frozenset({400, 422})


class SnapshotSender(Protocol):
    def snapshot(self, gz_body: bytes) -> Outcome: ...

    def telemetry(self, gz_body: bytes) -> Outcome: ...


def collect_options(config: AgentConfig) -> CollectOptions:
    return CollectOptions(
        include_types=config.include_types,
        exclude_types=config.exclude_types,
        include_namespaces=config.include_namespaces,
        exclude_namespaces=config.exclude_namespaces,
        page_size=config.page_size,
    )


class Agent:
    """One agent's state and cycle logic; every clock, sleep and random source is injected."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        kube: KubeApi,
        sender: SnapshotSender,
        key_fingerprint: str,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        wait: Callable[[float], bool] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.kube = kube
        self.sender = sender
        self.key_fingerprint = key_fingerprint
        self.stop = stop or threading.Event()
        self.clock = clock
        self.wall = wall
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.wait = wait or self.stop.wait
        self.log = logger or get_logger("loop")
        self.backoff = Backoff(max_s=config.max_backoff_s)
        self.acked: AckedState | None = None
        self.last_full_at: float | None = None
        self.stats: CollectionStats | None = None
        self.last_push: dict[str, Any] = {"result": "none"}
        self.hold_until = 0.0  # a Retry-After that outlived the last push's retries
        self.unsent = PingBuffer(config.telemetry_buffer)
        self.pings_made = 0
        self.next_ping = math.inf  # scheduled by run(); a bare push_cycle() never pings

    # -- one push cycle ------------------------------------------------------------------------

    def push_cycle(self, *, deadline: float | None = None) -> Outcome | None:
        """Collect and push once (full or delta); None when nothing was sent.

        A failing push is retried until `deadline` (default: one push interval from the send).
        """
        collected_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.wall()))
        try:
            collection = collect(
                self.kube, collect_options(self.config), should_stop=self.stop.is_set
            )
        except CollectionFailed as exc:
            log_event(self.log, "collection.failed", level=logging.ERROR, error=str(exc))
            self.last_push = {"result": "collection_failed", "error": str(exc)[:500]}
            return None
        self.stats = CollectionStats.of(collection)
        log_event(
            self.log,
            "collection.done",
            objects=len(collection.entries),
            duration_s=self.stats.duration_s,
            errors=collection.errors,
            malformed=dict(collection.malformed),
            list_restarts=collection.list_restarts,
            not_collected=collection.not_collected,
            unserved_types=collection.unserved_types,
        )
        if self.stop.is_set():
            return None
        now = self.clock()
        full_due = (
            self.last_full_at is None or now - self.last_full_at >= self.config.full_push_interval_s
        )
        # A full snapshot tells the server that every object it does not list was deleted, so
        # an incomplete collection is never sent as one, whatever the agent's state.
        incomplete = collection.incomplete(self.acked.hashes if self.acked else ())
        if incomplete and self.acked is None:
            # Nothing acknowledged to carry the missing types' objects over from: wait.
            log_event(
                self.log,
                "push.withheld",
                level=logging.ERROR,
                reason="incomplete collection",
                not_collected=incomplete,
            )
            self.last_push = {
                "result": "incomplete",
                "not_collected": incomplete,
                "at": collected_at,
            }
            return None
        if full_due and incomplete:
            # A delta carries the missing types' objects over; try the full one next cycle.
            log_event(self.log, "push.full_deferred", reason="incomplete", not_collected=incomplete)
            full_due = False
        if full_due or self.acked is None:
            plan = full_plan(collection)
        else:
            plan = delta_plan(collection, self.acked)
            if plan.digest == self.acked.digest:
                self.last_push = {**self.last_push, "result": "unchanged", "digest": plan.digest}
                log_event(self.log, "push.skipped", reason="unchanged", digest=plan.digest)
                return None
        outcome = self._send(plan, collected_at=collected_at, deadline=deadline)
        if outcome.status == HTTP_CONFLICT and plan.type == "delta":
            log_event(self.log, "push.conflict", level=logging.WARNING, base=plan.base_digest)
            if incomplete:
                # The server's state is not ours and this collection cannot replace it: start
                # afresh with the next complete collection.
                self.acked = None
                self.last_full_at = None
                return outcome
            plan = full_plan(collection)
            outcome = self._send(plan, collected_at=collected_at, deadline=deadline)
        del collection
        if outcome.ok:
            self.acked = plan.acked()
            if plan.type == "full":
                self.last_full_at = now
        elif plan.type == "delta" and outcome.status in REFUSED_DELTA:
            self.last_full_at = None  # the server will not take this delta: start afresh
        return outcome

    def _send(self, plan: PushPlan, *, collected_at: str, deadline: float | None) -> Outcome:
        body = encode(plan, collected_at=collected_at, agent_version=__version__)
        started = self.clock()
        outcome = retry(
            lambda: self.sender.snapshot(body),
            backoff=self.backoff,
            rng=self.rng,
            wait=self._pause,  # pings that fall due meanwhile are sent
            clock=self.clock,
            deadline=started + self.config.push_interval_s if deadline is None else deadline,
            on_retry=lambda out, delay: self._log_retry("snapshot", out, delay),
        )
        if not outcome.ok and outcome.retry_after:
            self.hold_until = self.clock() + outcome.retry_after
        self.last_push = {
            "result": "accepted" if outcome.ok else "failed",
            "type": plan.type,
            "digest": plan.digest,
            "objects": len(plan.packed_bodies),
            "removed": len(plan.removed),
            "at": collected_at,
            **outcome.summary(),
        }
        log_event(
            self.log,
            "push.done" if outcome.ok else "push.failed",
            level=logging.INFO if outcome.ok else logging.ERROR,
            duration_s=round(self.clock() - started, 3),
            **self.last_push,
        )
        return outcome

    def _log_retry(self, what: str, outcome: Outcome, delay: float) -> None:
        log_event(
            self.log,
            f"{what}.retry",
            level=logging.WARNING,
            status=outcome.status,
            detail=outcome.detail,
            retry_in_s=round(delay, 3),
        )

    # -- telemetry -----------------------------------------------------------------------------

    def ping(self, *, deadline: float | None = None) -> Outcome:
        """Make a ping, queue it behind any unsent ones and send the queue oldest first.

        Each is retried until `deadline` (default: one ping interval from now); what is still
        unsent then stays queued (bounded by `telemetry_buffer`) for the next ping to send.
        """
        self.pings_made += 1
        body = envelope(
            self.stats,
            agent_version=__version__,
            last_push=self.last_push,
            key_fingerprint=self.key_fingerprint,
            now=self.wall(),
            seq=self.pings_made,
            pings_dropped=self.unsent.dropped,
        )
        evicted = self.unsent.add(encode_json(dict(body)))
        if evicted:
            log_event(
                self.log,
                "telemetry.dropped",
                level=logging.WARNING,
                dropped=evicted,
                dropped_total=self.unsent.dropped,
                buffer=self.unsent.limit,
            )
        until = self.clock() + self.config.ping_interval_s if deadline is None else deadline
        return self._flush_telemetry(deadline=until)

    def _flush_telemetry(self, *, deadline: float) -> Outcome:
        outcome = Outcome(0, detail="nothing to send")
        sent = 0
        while (pending := self.unsent.oldest()) is not None and not self.stop.is_set():
            outcome = retry(
                functools.partial(self.sender.telemetry, pending),
                backoff=self.backoff,
                rng=self.rng,
                wait=self.wait,
                clock=self.clock,
                deadline=deadline,
                on_retry=lambda out, delay: self._log_retry("telemetry", out, delay),
            )
            if outcome.retryable or outcome.status == HTTP_UNAUTHORIZED:
                break  # the server is away or does not know the key yet: keep it for later
            self.unsent.sent()
            if outcome.ok:
                sent += 1
            else:
                log_event(self.log, "telemetry.refused", level=logging.ERROR, **outcome.summary())
        if len(self.unsent):
            log_event(
                self.log,
                "telemetry.failed",
                level=logging.WARNING,
                unsent=len(self.unsent),
                **outcome.summary(),
            )
        elif sent > 1:
            log_event(self.log, "telemetry.resent", pings=sent)
        return outcome

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` (True when asked to stop), sending any ping that falls due meanwhile."""
        end = self.clock() + seconds
        while True:
            if self.clock() >= self.next_ping:
                self._scheduled_ping(deadline=end)
            now = self.clock()
            if now >= end:
                return self.stop.is_set()
            if self.wait(min(end, self.next_ping) - now):
                return True

    def _scheduled_ping(self, *, deadline: float) -> None:
        started = self.clock()
        until = min(started + self.config.ping_interval_s, deadline)
        self._guarded(lambda: self.ping(deadline=until))
        self.next_ping = started + self.config.ping_interval_s

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Push at start and every push interval, ping every ping interval, until stopped.

        Each cycle is due one push interval after the previous one started (or after a longer
        Retry-After); a failing push is retried until then, never beyond.
        """
        next_push = self.next_ping = self.clock()
        while not self.stop.is_set():
            if self.clock() >= next_push:
                cycle_end = self.clock() + self.config.push_interval_s
                self._guarded(functools.partial(self.push_cycle, deadline=cycle_end))
                next_push = max(cycle_end, self.hold_until)
            if self.stop.is_set():
                break
            if self._pause(max(0.0, next_push - self.clock())):
                break
        log_event(self.log, "agent.stopped", last_push=self.last_push)

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run one cycle step; an unexpected error is logged, never fatal to the loop."""
        try:
            action()
        except Exception as exc:  # the agent must keep running, whatever failed
            log_event(
                self.log, "cycle.error", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}"
            )
